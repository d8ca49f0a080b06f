//! The worker's energy meter and observer: progress to the parent, energy counters read at
//! the measured window's edges, the reference kernel's runs kept out of the window, and the
//! scheduler's counters read at the window's edges and between its chunks.

use std::io::Write;
use std::time::Instant;

use super::protocol::{send, EnergySetup, WorkerMessage};
use crate::measure::{self, Progress};
use crate::probe::energy::{self, Rapl, RaplReading, Tdp};
use crate::probe::sched::{SchedFigures, SchedReading, SchedWindow};
use crate::schema::{EnergyInfo, EnergyMethod};
use crate::target::DeviceKind;

/// Time given to the reference kernel on each side of the measured window.
pub(super) const REFERENCE_BUDGET: std::time::Duration = std::time::Duration::from_millis(25);
/// ... and between the window's chunks, with each progress report (every 100 ms or more).
const REFERENCE_DURING: std::time::Duration = std::time::Duration::from_millis(2);

/// The energy source chosen for this case, with what the window's edges read.
pub(super) enum Meter {
    Rapl {
        rapl: Rapl,
        idle: Option<f64>,
        start: Option<RaplReading>,
    },
    Nvml {
        gpu: Box<energy::nvml::Gpu>,
        idle: Option<f64>,
        start: Option<u64>,
    },
    Estimate {
        tdp: Tdp,
        note: String,
        start_cpu_s: f64,
    },
}

impl Meter {
    pub(super) fn choose(setup: &EnergySetup, device: DeviceKind) -> Meter {
        let mut notes = Vec::new();
        if let DeviceKind::Cuda(index) = device {
            match energy::nvml::Gpu::open(index) {
                Ok(gpu) if gpu.energy_mj().is_ok() => {
                    return Meter::Nvml {
                        gpu: Box::new(gpu),
                        idle: setup.nvml_idle_watts,
                        start: None,
                    }
                }
                Ok(gpu) => notes.extend(gpu.energy_mj().err().map(|e| e.to_string())),
                Err(why) => notes.push(why.to_string()),
            }
        } else {
            match Rapl::open(&setup.powercap_root) {
                Ok(rapl) => {
                    return Meter::Rapl {
                        rapl,
                        idle: setup.rapl_idle_watts,
                        start: None,
                    }
                }
                Err(why) => notes.push(why.to_string()),
            }
        }
        Meter::Estimate {
            tdp: setup.tdp.clone(),
            note: notes.join("; "),
            start_cpu_s: 0.0,
        }
    }
}

/// The worker's observer: progress to the parent, energy counters at the window's edges.
pub(super) struct WorkerObserver<'a, W: Write> {
    pub(super) out: &'a mut W,
    pub(super) meter: Meter,
    pub(super) window_start: Option<Instant>,
    pub(super) batch_size: usize,
    pub(super) energy: Option<Result<EnergyInfo, String>>,
    /// Reference-kernel times around and during the window (see `Measurement`).
    pub(super) reference_us: Vec<f64>,
    /// What the reference kernel cost inside the window, kept out of its energy: wall
    /// seconds, and joules (RAPL, NVML) or CPU seconds (estimate) read around each run.
    pub(super) reference_cost: ReferenceCost,
    /// The scheduler's counters over the window (`probe::sched`).
    sched: SchedWindow,
    /// ... and their sum once the window ended (`None` where /proc has no schedstat).
    pub(super) sched_figures: Option<SchedFigures>,
}

#[derive(Default)]
pub(super) struct ReferenceCost {
    pub(super) wall_s: f64,
    pub(super) joules: f64,
    pub(super) cpu_s: f64,
}

impl<'a, W: Write> WorkerObserver<'a, W> {
    pub(super) fn new(out: &'a mut W, meter: Meter, batch_size: usize) -> Self {
        WorkerObserver {
            out,
            meter,
            window_start: None,
            batch_size,
            energy: None,
            reference_us: Vec::with_capacity(64),
            reference_cost: ReferenceCost::default(),
            sched: SchedWindow::of_this_process(),
            sched_figures: None,
        }
    }

    /// Times the reference kernel between chunks of the window, reading the meter on both
    /// sides so that its cost is not counted in the window's energy.
    fn reference_in_window(&mut self) {
        let wall = Instant::now();
        let cpu = energy::process_cpu_time_s();
        let rapl = match &self.meter {
            Meter::Rapl { rapl, .. } => rapl.read().ok(),
            _ => None,
        };
        let gpu_mj = match &self.meter {
            Meter::Nvml { gpu, .. } => gpu.energy_mj().ok(),
            _ => None,
        };
        self.reference_us
            .push(measure::reference::reference_us(REFERENCE_DURING));
        self.sched.add(SchedReading::now());
        let cost = &mut self.reference_cost;
        match &self.meter {
            Meter::Rapl { rapl: meter, .. } => {
                if let (Some(a), Ok(b)) = (rapl, meter.read()) {
                    cost.joules += meter.joules_between(&a, &b);
                }
            }
            Meter::Nvml { gpu, .. } => {
                if let (Some(a), Ok(b)) = (gpu_mj, gpu.energy_mj()) {
                    cost.joules += b.saturating_sub(a) as f64 / 1000.0;
                }
            }
            Meter::Estimate { .. } => cost.cpu_s += energy::process_cpu_time_s() - cpu,
        }
        cost.wall_s += wall.elapsed().as_secs_f64();
    }
}

impl<W: Write> measure::Observer for WorkerObserver<'_, W> {
    fn progress(&mut self, p: &Progress) {
        send(self.out, &WorkerMessage::Progress(p.clone()));
        // Between timed chunks of the window: a short look at the machine's own speed.
        if p.phase == measure::Phase::Sampling && self.window_start.is_some() {
            self.reference_in_window();
        }
    }

    fn window_started(&mut self) {
        self.sched.add(SchedReading::now());
        match &mut self.meter {
            Meter::Rapl { rapl, start, .. } => *start = rapl.read().ok(),
            Meter::Nvml { gpu, start, .. } => *start = gpu.energy_mj().ok(),
            Meter::Estimate { start_cpu_s, .. } => *start_cpu_s = energy::process_cpu_time_s(),
        }
        self.window_start = Some(Instant::now());
    }

    fn window_ended(&mut self, samples: usize) {
        let read = Instant::now();
        self.sched.add(SchedReading::now());
        let wall_s = self.window_start.map(|t| t.elapsed().as_secs_f64());
        let one_core = crate::target::available_cores().len() == 1;
        self.sched_figures = wall_s.and_then(|s| self.sched.figures(s, one_core));
        self.reference_cost.wall_s += read.elapsed().as_secs_f64();
        // The reference kernel's runs inside the window are not the model's.
        let cost = std::mem::take(&mut self.reference_cost);
        let window_s = self
            .window_start
            .map(|t| (t.elapsed().as_secs_f64() - cost.wall_s).max(0.0))
            .unwrap_or(0.0);
        let inferences = (samples * self.batch_size) as u64;
        self.energy = Some(match &self.meter {
            Meter::Rapl { rapl, idle, start } => match (start, rapl.read()) {
                (Some(a), Ok(b)) => {
                    let mut info = EnergyInfo::new(
                        EnergyMethod::Rapl,
                        (rapl.joules_between(a, &b) - cost.joules).max(0.0),
                        *idle,
                        window_s,
                        inferences,
                    );
                    info.domains = rapl.domain_names();
                    Ok(info)
                }
                (None, _) => Err("RAPL could not be read at the window's start".into()),
                (_, Err(e)) => Err(e.to_string()),
            },
            Meter::Nvml { gpu, idle, start } => match (start, gpu.energy_mj()) {
                (Some(a), Ok(b)) => {
                    let joules = (b.saturating_sub(*a) as f64 / 1000.0 - cost.joules).max(0.0);
                    let mut info =
                        EnergyInfo::new(EnergyMethod::Nvml, joules, *idle, window_s, inferences);
                    info.domains = vec!["gpu".into()];
                    Ok(info)
                }
                (None, _) => Err("NVML could not be read at the window's start".into()),
                (_, Err(e)) => Err(e.to_string()),
            },
            Meter::Estimate {
                tdp,
                note,
                start_cpu_s,
            } => {
                let cpu_s = (energy::process_cpu_time_s() - start_cpu_s - cost.cpu_s).max(0.0);
                let (joules, estimate) = energy::estimate_from_cpu_time(cpu_s, tdp);
                let mut info = EnergyInfo::new(
                    EnergyMethod::EstimateTdp,
                    joules,
                    None,
                    window_s,
                    inferences,
                );
                info.domains = vec!["cpu-time".into()];
                info.estimate = Some(estimate);
                info.note = (!note.is_empty()).then(|| note.clone());
                Ok(info)
            }
        });
    }
}
