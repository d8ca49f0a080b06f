//! The `[[targets]]` tables: devices, thread counts, cores and memory limits.

use super::*;

impl Validator {
    pub(super) fn targets(&mut self, targets: &Spanned<Vec<Spanned<TargetEntry>>>) -> Vec<Target> {
        if targets.get_ref().is_empty() {
            self.problem(
                "targets",
                targets.span(),
                "no targets",
                Some("add [[targets]] with device = \"cpu\""),
            );
        }
        let mut out: Vec<Target> = Vec::new();
        for (i, t) in targets.get_ref().iter().enumerate() {
            let at = format!("targets[{i}]");
            let t = t.get_ref();
            let device = match t.device.get_ref().parse::<DeviceKind>() {
                Ok(d) => d,
                Err(msg) => {
                    self.problem(
                        format!("{at}.device"),
                        t.device.span(),
                        msg.to_string(),
                        Some("devices are `cpu` or `cuda:N` (N = 0, 1, ...)"),
                    );
                    continue;
                }
            };
            let name = match &t.name {
                Some(n) if !valid_name(n.get_ref()) => {
                    self.problem(
                        format!("{at}.name"),
                        n.span(),
                        format!("`{}` is not a valid name", n.get_ref()),
                        Some(NAME_HINT),
                    );
                    continue;
                }
                Some(n) => Some(n.get_ref().as_str()),
                None => None,
            };
            let threads = match &t.threads {
                Some(list) => match self.counts(&format!("{at}.threads"), list, 1, false) {
                    Some(v) => v,
                    None => continue,
                },
                None => vec![1],
            };
            let cores = match &t.cores {
                None => None,
                Some(list) => {
                    let Some(mut cores) = self.counts(&format!("{at}.cores"), list, 0, false)
                    else {
                        continue;
                    };
                    cores.sort_unstable();
                    cores.dedup();
                    let available = crate::target::available_cores();
                    if let Some(bad) = cores.iter().find(|c| !available.contains(c)) {
                        let hint = format!("cores this process may use here: {available:?}");
                        self.problem(
                            format!("{at}.cores"),
                            list.span(),
                            format!("core {bad} does not exist or is not available"),
                            Some(&hint),
                        );
                        continue;
                    }
                    Some(cores)
                }
            };
            let max_rss_mb = match &t.max_rss_mb {
                None => None,
                Some(v) => match self.count(&format!("{at}.max_rss_mb"), v, 1) {
                    Some(mb) => Some(mb as u64),
                    None => continue,
                },
            };
            for n in threads {
                let mut target = Target::new(name, device, n);
                target.cores = cores.clone();
                target.max_rss_mb = max_rss_mb;
                if out.iter().any(|o| o.label == target.label) {
                    self.problem(
                        format!("{at}.threads"),
                        t.device.span(),
                        format!("target `{}` appears twice", target.label),
                        Some("give targets distinct names or thread counts"),
                    );
                    continue;
                }
                out.push(target);
            }
        }
        out
    }
}
