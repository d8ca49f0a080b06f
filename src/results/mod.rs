//! Run files: their JSON and CSV forms, atomic writes, the journal, merge.

pub mod journal;
mod merge;

pub use crate::schema::*;
pub use merge::{merge, MergeError};
