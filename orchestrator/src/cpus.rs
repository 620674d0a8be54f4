//! Cores kept for the engine (`BETFLOW_ENGINE_CPUS`).
//!
//! On a host whose cores a web load keeps busy, every wake-up of the
//! engine's threads and of its Postgres backends waits for a core behind
//! that load, and so does the completion of each hop's WAL flush; a hop
//! then takes several times as long (docs/scheduler.md, "Cores of its
//! own"). Keeping some cores for the engine's threads and its backends, and
//! everything else of the process (the web's runtime, the embedded
//! cluster's other processes, the broker) off them, gives the engine cores
//! nothing else waits on, as running the scheduler on a host of its own
//! would.

use std::fmt;
use std::str::FromStr;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// A set of CPU numbers, as `taskset -c` and cgroups' `cpuset.cpus` write
/// them: `1`, `0,2`, `2-3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpus(Vec<usize>);

#[derive(Debug, thiserror::Error)]
pub enum CpusError {
    #[error("`{0}` is not a CPU list (e.g. `1` or `0,2-3`)")]
    Syntax(String),
    #[error("this process may run on CPUs {allowed} only; {asked} are not all among them")]
    NotAllowed { asked: Cpus, allowed: Cpus },
    #[error("CPUs {0} are all this process may run on: the web and the database need one left")]
    NoneLeft(Cpus),
    #[error("cannot read the CPUs this thread may run on: {0}")]
    Read(nix::Error),
    #[error("cannot place {what} on CPUs {cpus}: {source}")]
    Affinity {
        what: String,
        cpus: Cpus,
        source: nix::Error,
    },
}

impl Cpus {
    /// The CPUs the calling thread may run on.
    pub fn of_this_thread() -> Result<Self, CpusError> {
        let set = sched_getaffinity(Pid::from_raw(0)).map_err(CpusError::Read)?;
        Ok(Cpus(
            (0..CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .collect(),
        ))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, cpu: usize) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    fn without(&self, other: &Cpus) -> Cpus {
        Cpus(
            self.0
                .iter()
                .copied()
                .filter(|&c| !other.contains(c))
                .collect(),
        )
    }

    fn set(&self) -> Result<CpuSet, nix::Error> {
        let mut set = CpuSet::new();
        for &cpu in &self.0 {
            set.set(cpu)?;
        }
        Ok(set)
    }

    /// Runs the calling thread on these CPUs from now on; threads it
    /// starts, and processes it spawns, start on them too.
    pub fn pin_this_thread(&self) -> Result<(), CpusError> {
        self.pin(0, "this thread")
    }

    /// Runs the thread or single-threaded process `pid` on these CPUs.
    pub fn pin(&self, pid: i32, what: &str) -> Result<(), CpusError> {
        self.set()
            .and_then(|set| sched_setaffinity(Pid::from_raw(pid), &set))
            .map_err(|source| CpusError::Affinity {
                what: what.to_owned(),
                cpus: self.clone(),
                source,
            })
    }

    /// Runs every thread of this process on these CPUs (threads started
    /// later inherit their starter's CPUs).
    pub fn pin_this_process(&self) -> Result<(), CpusError> {
        // A thread not yet placed may start another meanwhile (jemalloc's
        // background threads start when they are first needed): listed
        // again until a listing holds no thread not placed.
        let mut placed = std::collections::HashSet::new();
        loop {
            let new: Vec<i32> = tasks_of(std::process::id())
                .into_iter()
                .filter(|tid| !placed.contains(tid))
                .collect();
            if new.is_empty() {
                return Ok(());
            }
            for tid in new {
                self.pin_unless_gone(tid, &format!("thread {tid} of this process"))?;
                placed.insert(tid);
            }
        }
    }

    /// [`Cpus::pin`], a thread or process that has exited since it was
    /// listed skipped.
    fn pin_unless_gone(&self, pid: i32, what: &str) -> Result<(), CpusError> {
        match self.pin(pid, what) {
            Err(CpusError::Affinity {
                source: nix::Error::ESRCH,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Runs the single-threaded process `pid` and its children on these
    /// CPUs: a postmaster and the servers it forked, so the processes it
    /// forks later start on them too.
    pub fn pin_process_tree(&self, pid: i32, what: &str) -> Result<(), CpusError> {
        self.pin(pid, what)?;
        for child in children_of(pid) {
            self.pin_unless_gone(child, &format!("process {child} of {what}"))?;
        }
        Ok(())
    }
}

/// The thread ids of process `pid`.
fn tasks_of(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The processes whose parent is `pid`, from each process's `stat`.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| parent_in_stat(&stat))
                == Some(pid)
        })
        .collect()
}

/// The parent pid in a `/proc/{pid}/stat` line: the second field after the
/// command name, which is in parentheses and may itself hold spaces or `)`.
fn parent_in_stat(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl FromStr for Cpus {
    type Err = CpusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CpusError::Syntax(s.to_owned());
        let mut cpus = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let first: usize = first.parse().map_err(|_| bad())?;
            let last: usize = last.parse().map_err(|_| bad())?;
            if first > last || last >= CpuSet::count() {
                return Err(bad());
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Cpus(cpus))
    }
}

impl fmt::Display for Cpus {
    /// Runs written as ranges: `0,2-3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

/// The engine's CPUs and the rest of those the process may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub engine: Cpus,
    pub rest: Cpus,
}

impl Placement {
    /// `engine` of the CPUs the calling thread may use; at least one must
    /// be left for the rest.
    pub fn new(engine: Cpus) -> Result<Self, CpusError> {
        let allowed = Cpus::of_this_thread()?;
        if !engine.0.iter().all(|&c| allowed.contains(c)) {
            return Err(CpusError::NotAllowed {
                asked: engine,
                allowed,
            });
        }
        let rest = allowed.without(&engine);
        if rest.is_empty() {
            return Err(CpusError::NoneLeft(engine));
        }
        Ok(Self { engine, rest })
    }

    /// Every CPU of the placement: those the process could use before.
    pub fn all(&self) -> Cpus {
        let mut all: Vec<usize> = self.engine.0.iter().chain(&self.rest.0).copied().collect();
        all.sort_unstable();
        all.dedup();
        Cpus(all)
    }
}

/// What `BETFLOW_ENGINE_CPUS` asks for: `auto` (the default), `none`, or
/// a CPU list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Keep {
    /// A process that serves pages (`betflow up`) keeps the last CPU it may
    /// use for its engine when it may use two or more; one that does not
    /// (`betflow scheduler`) keeps none.
    #[default]
    Auto,
    /// No CPU kept: every thread and process on every CPU.
    Nothing,
    /// These CPUs.
    Cpus(Cpus),
}

impl FromStr for Keep {
    type Err = CpusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Keep::Auto),
            "none" => Ok(Keep::Nothing),
            list => list.parse().map(Keep::Cpus),
        }
    }
}

impl Keep {
    /// The placement asked for, checked against the CPUs the calling
    /// thread may use; `auto` as a process that serves pages when
    /// `serves_pages`.
    pub fn placement(&self, serves_pages: bool) -> Result<Option<Placement>, CpusError> {
        match self {
            Keep::Nothing => Ok(None),
            Keep::Cpus(cpus) => Placement::new(cpus.clone()).map(Some),
            Keep::Auto if !serves_pages => Ok(None),
            Keep::Auto => {
                let allowed = Cpus::of_this_thread()?;
                match allowed.0.last() {
                    Some(&last) if allowed.len() >= 2 => Placement::new(Cpus(vec![last])).map(Some),
                    _ => Ok(None),
                }
            }
        }
    }
}

/// Where the engine of [`crate::engine::spawn_dedicated`] runs: its
/// threads on the placement's engine CPUs, and its Postgres backends too
/// when `backends` (the cluster is this host's and ours to place: the
/// embedded one).
#[derive(Debug, Clone)]
pub struct EngineCpus {
    pub placement: Placement,
    pub backends: bool,
}

/// The name of the engine runtime's workers once placed on the kept CPUs.
pub const ENGINE_THREAD: &str = "betflow-engine";
/// The name of the engine runtime's blocking threads, on every CPU.
pub const BLOCKING_THREAD: &str = "betflow-block";

impl EngineCpus {
    /// A multi-threaded runtime placed as the engine's
    /// ([`EngineCpus::place_runtime`]), a worker per kept CPU.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        self.place_runtime(&mut builder);
        builder
            .worker_threads(self.placement.engine.len().max(1))
            .enable_all()
            .build()
    }

    /// Places the threads of the runtime `builder` builds as the engine's:
    /// its workers, which run the engine's loops and its tasks' async
    /// parts, on the kept CPUs; its blocking threads on every CPU. What a
    /// task does on the blocking pool (a polars transform, a file written,
    /// and the thread pools polars starts from there) is the work itself:
    /// held to the kept CPUs it would get a small share of a large host.
    /// Both kinds start on every CPU (`on_thread_start`); a worker is
    /// placed, and named [`ENGINE_THREAD`], when it first parks, which only
    /// workers do.
    pub fn place_runtime(&self, builder: &mut tokio::runtime::Builder) {
        let all = self.placement.all();
        let kept = self.placement.engine.clone();
        builder
            .thread_name(BLOCKING_THREAD)
            .on_thread_start(move || {
                // Started by a worker, a blocking thread starts on its CPUs.
                if let Err(e) = all.pin_this_thread() {
                    tracing::warn!("{e}");
                }
            })
            .on_thread_park(move || {
                thread_local! {
                    static PLACED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
                }
                if PLACED.with(|placed| placed.replace(true)) {
                    return;
                }
                if let Err(e) = kept.pin_this_thread() {
                    tracing::warn!("{e}");
                }
                if let Ok(name) = std::ffi::CString::new(ENGINE_THREAD) {
                    let _ = nix::sys::prctl::set_name(&name);
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_and_write_as_taskset_does() {
        let cpus: Cpus = "3, 0-1,1".parse().unwrap();
        assert_eq!(cpus.0, [0, 1, 3]);
        assert_eq!(cpus.to_string(), "0-1,3");
        assert_eq!("2".parse::<Cpus>().unwrap().to_string(), "2");
        for bad in ["", "a", "1-", "3-1", "1,,2", "-1", "99999"] {
            let err = bad.parse::<Cpus>().unwrap_err();
            assert!(err.to_string().contains("not a CPU list"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_placement_keeps_a_cpu_for_the_rest_and_only_takes_allowed_ones() {
        let allowed = Cpus::of_this_thread().unwrap();
        let err = Placement::new(allowed.clone()).unwrap_err();
        assert!(err.to_string().contains("need one left"), "{err}");
        let past: Cpus = (CpuSet::count() - 1).to_string().parse().unwrap();
        let err = Placement::new(past).unwrap_err();
        assert!(err.to_string().contains("only"), "{err}");
        if allowed.len() > 1 {
            let first = Cpus(vec![allowed.0[0]]);
            let placed = Placement::new(first.clone()).unwrap();
            assert_eq!(placed.engine, first);
            assert_eq!(placed.rest, allowed.without(&first));
            assert_eq!(placed.all(), allowed);
        }
    }

    #[test]
    fn auto_keeps_the_last_cpu_for_a_process_that_serves_pages_when_it_has_two() {
        let allowed = Cpus::of_this_thread().unwrap();
        assert_eq!("auto".parse::<Keep>().unwrap(), Keep::Auto);
        assert_eq!("none".parse::<Keep>().unwrap(), Keep::Nothing);
        assert_eq!("0-1".parse::<Keep>().unwrap(), Keep::Cpus(Cpus(vec![0, 1])));
        assert!("some".parse::<Keep>().is_err());
        assert_eq!(Keep::Nothing.placement(true).unwrap(), None);
        assert_eq!(Keep::Auto.placement(false).unwrap(), None);
        let auto = Keep::Auto.placement(true).unwrap();
        if allowed.len() < 2 {
            assert_eq!(auto, None);
        } else {
            let placed = auto.expect("a placement");
            assert_eq!(placed.engine, Cpus(vec![*allowed.0.last().unwrap()]));
            assert_eq!(placed.all(), allowed);
        }
    }

    #[test]
    fn a_pinned_thread_runs_where_it_was_placed() {
        let allowed = Cpus::of_this_thread().unwrap();
        let last = Cpus(vec![*allowed.0.last().unwrap()]);
        let (inner, child) = std::thread::spawn(move || {
            last.pin_this_thread().unwrap();
            // A thread started by a pinned one starts pinned.
            let child = std::thread::spawn(|| Cpus::of_this_thread().unwrap())
                .join()
                .unwrap();
            (Cpus::of_this_thread().unwrap(), child)
        })
        .join()
        .unwrap();
        assert_eq!(inner.len(), 1);
        assert_eq!(child, inner);
        assert_eq!(Cpus::of_this_thread().unwrap(), allowed, "others untouched");
    }

    #[test]
    fn an_engine_runtime_keeps_its_workers_on_the_kept_cpus_and_blocks_on_every_cpu() {
        let allowed = Cpus::of_this_thread().unwrap();
        if allowed.len() < 2 {
            return; // no placement without a CPU left for the rest
        }
        let kept = Cpus(vec![*allowed.0.last().unwrap()]);
        let placed = EngineCpus {
            placement: Placement::new(kept.clone()).unwrap(),
            backends: false,
        };
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        placed.place_runtime(&mut builder);
        let rt = builder.worker_threads(1).enable_all().build().unwrap();
        // Placed once it has parked: asked again until it has.
        let on_worker = || {
            let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
            (Cpus::of_this_thread().unwrap(), name.trim().to_owned())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let worker = loop {
            let seen = rt.block_on(rt.spawn(async move { on_worker() })).unwrap();
            if seen.0 == kept || std::time::Instant::now() > deadline {
                break seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(worker, (kept, ENGINE_THREAD.to_owned()));
        // A blocking thread, started by the worker, runs on every CPU.
        let blocking = rt
            .block_on(rt.spawn(async move { tokio::task::spawn_blocking(on_worker).await }))
            .unwrap()
            .unwrap();
        assert_eq!(blocking, (allowed, BLOCKING_THREAD.to_owned()));
    }

    #[test]
    fn the_parent_is_read_past_a_command_name_holding_parentheses() {
        assert_eq!(parent_in_stat("42 (postgres) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("42 (a) b) S 9 1"), Some(9));
        assert_eq!(parent_in_stat("garbage"), None);
    }
}
