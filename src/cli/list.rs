//! `list`: a suite's expanded case matrix.

use std::path::PathBuf;

use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::{exit, load_suite, parse_filter, Failure};
use crate::plan;

#[derive(Args, Debug)]
pub struct ListArgs {
    suite: PathBuf,
    #[arg(long)]
    filter: Option<String>,
}

pub(super) fn execute(args: ListArgs) -> Result<i32, Failure> {
    let suite = load_suite(&args.suite)?;
    let filter = parse_filter(args.filter.as_deref())?;
    let cases = plan::filter(plan::expand(&suite, &suite.settings), filter.as_ref());
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id", "model", "variant", "target", "threads", "scenario", "batch",
    ]);
    for c in &cases {
        table.add_row(vec![
            Cell::new(&c.id),
            Cell::new(&c.model),
            Cell::new(&c.variant),
            Cell::new(&c.target.label),
            Cell::new(c.target.threads).set_alignment(CellAlignment::Right),
            Cell::new(c.scenario.kind().as_str()),
            Cell::new(c.batch_size).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("{table}\n{} cases", cases.len());
    Ok(exit::OK)
}
