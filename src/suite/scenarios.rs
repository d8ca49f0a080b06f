//! The `[scenarios]` table: which scenarios run, with their batch sizes.

use super::*;

impl Validator {
    pub(super) fn scenarios(&mut self, s: &Spanned<ScenariosEntry>) -> Vec<(Scenario, Vec<usize>)> {
        let mut out = Vec::new();
        if s.get_ref().single_stream.is_some() {
            out.push((Scenario::SingleStream, vec![1]));
        }
        if let Some(off) = &s.get_ref().offline {
            if let Some(mut b) =
                self.counts("scenarios.offline.batch_sizes", &off.batch_sizes, 1, false)
            {
                // Repeated sizes would give repeated case ids.
                let mut seen = BTreeSet::new();
                b.retain(|x| seen.insert(*x));
                out.push((Scenario::Offline, b));
            }
        }
        let e = s.get_ref();
        if e.single_stream.is_none()
            && e.offline.is_none()
            && e.server.is_none()
            && e.multi_stream.is_none()
        {
            self.problem(
                "scenarios",
                s.span(),
                "no scenario",
                Some("add [scenarios.single_stream], [scenarios.offline] with batch_sizes = [1, 8], [scenarios.server] or [scenarios.multi_stream]"),
            );
        }
        out
    }
}
