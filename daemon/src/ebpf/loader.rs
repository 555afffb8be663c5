use crate::error_text::chain;

use aya::maps::{MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};
use mdatp_bpf::{Domain, Hook, SYS_EXIT_DISPATCH, SyscallVariant, programs};

use std::time::{Duration, Instant};

use super::BpfCounters;
use super::kfunc::{self, KfuncResolution};
use super::map_sizes::MapSizes;
use crate::exe_identity::{self, KernelFileId};
use crate::filters::KernelFilters;
use crate::mounts::MountTable;

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("ring buffer size {0} must be a power of two and at least 4096 bytes")]
    RingSize(u32),
    #[error("load the BPF object into the kernel")]
    Load(#[source] aya::EbpfError),
    #[error("BPF map `{0}` is missing from the object")]
    MissingMap(&'static str),
    #[error("open BPF map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("register the ring buffer with tokio")]
    Register(#[source] std::io::Error),
    #[error("no BPF program could be attached ({0})")]
    NothingAttached(String),
    #[error("read the running processes from /proc")]
    Snapshot(#[source] std::io::Error),
    #[error("write filter map `{name}`")]
    Filter {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("the thread that loads the programs for a switch")]
    LoadThread(#[source] std::io::Error),
}

/// What the loader was asked to do.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The ring's and the tables' sizes (map_sizes.rs).
    pub sizes: MapSizes,
    /// Unread bytes per wake-up of user space (common.bpf.h).
    pub wakeup_bytes: u64,
    /// Every record wakes user space once it is four times
    /// `wakeup_bytes` behind (the storm's brake, common.bpf.h); off only
    /// to measure what the brake costs (`mdatp-bench kernel-cost`).
    pub far_behind_wakeups: bool,
    /// Test hook: programs whose attach is pointed at a tracepoint that
    /// does not exist, so the kernel refuses it for real.
    pub break_programs: Vec<String>,
    pub filters: KernelFilters,
    /// Which build of the syscall exit programs to load (chosen by the
    /// capability probes).
    pub variant: SyscallVariant,
    /// How the object's kfunc calls are resolved (kfunc.rs); not
    /// `Kernel` only in tests.
    pub kfuncs: KfuncChoice,
}

/// How the loader resolves the object's kfunc calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KfuncChoice {
    /// By the running kernel's BTF (the default).
    Kernel,
    /// As if the kernel had none (`--test-without-kfuncs`).
    None,
    /// With an id the kernel refuses (`--test-refused-kfuncs`): the load
    /// must go again without them.
    BadId,
}

/// One program and its hook: attached, or why not.
#[derive(Debug, Clone)]
pub struct HookStatus {
    pub program: &'static str,
    pub domain: Domain,
    pub hook: String,
    pub error: Option<String>,
    /// Not loaded: this kernel lacks the hook (`ProgramSpec::since`).
    pub absent: Option<&'static str>,
}

impl HookStatus {
    pub fn attached(&self) -> bool {
        self.error.is_none() && self.absent.is_none()
    }
}

/// The running kernel's (major, minor).
fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The name to attach a `since` hook by, or Err when this kernel lacks it.
fn available(since: &mdatp_bpf::Since, name: &'static str) -> Result<&'static str, ()> {
    if kernel_version().is_some_and(|v| v < since.kernel) {
        return Err(());
    }
    match tracepoint_exists(name) {
        Some(true) | None => Ok(name),
        Some(false) => match since.older_name {
            Some(old) if tracepoint_exists(old) == Some(true) => Ok(old),
            _ => Err(()),
        },
    }
}

/// Whether the kernel has tracepoint `name` (any category), when tracefs
/// can tell; None when it cannot (then the attach decides).
fn tracepoint_exists(name: &str) -> Option<bool> {
    let root = [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .into_iter()
    .map(std::path::Path::new)
    .find(|p| p.join("syscalls").exists() || p.join("sched").exists())?;
    let entries = std::fs::read_dir(root).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .any(|category| category.path().join(name).exists()),
    )
}

/// The loaded object. Dropping it detaches and unloads every program
/// (nothing is pinned).
pub struct EbpfSensor {
    bpf: Ebpf,
    pub hooks: Vec<HookStatus>,
    /// What the ring and the tables were sized to at load.
    pub sizes: MapSizes,
    /// How the object's kfunc calls were resolved at load.
    pub kfuncs: KfuncResolution,
    /// The excluded executables' files as last found (exe_identity.rs),
    /// one per entry of the filters' processes, and when.
    exe_ids: Vec<Option<KernelFileId>>,
    exe_ids_at: Instant,
    mounts: MountTable,
}

/// How often the excluded executables' files are looked up again (an
/// upgraded package puts a new file at the path).
const EXE_ID_REFRESH: Duration = Duration::from_secs(30);

impl EbpfSensor {
    /// Loads and attaches. Where the kernel refuses the kfunc calls (a
    /// kernel between 6.2 and the ones tested that has the kfunc but does
    /// not let these programs call it), everything is loaded again
    /// without them: the helper paths of 5.15-6.1.
    pub fn load(opts: &LoadOptions) -> Result<Self, EbpfError> {
        let kfunc_id = match opts.kfuncs {
            KfuncChoice::Kernel => kfunc::kernel_func_id(kfunc::RDONLY_CAST),
            KfuncChoice::None => None,
            KfuncChoice::BadId => Some(1),
        };
        let sensor = Self::load_with(opts, kfunc_id)?;
        let refused: Vec<&str> = sensor
            .hooks
            .iter()
            .filter_map(|h| h.error.as_deref().filter(|e| kfunc::refused(e)))
            .collect();
        if kfunc_id.is_none() || refused.is_empty() {
            log::info!("eBPF programs' kernel reads: {}", sensor.kfuncs);
            return Ok(sensor);
        }
        log::warn!(
            "this kernel refused the {} calls of {} programs (the first: {}): loading \
             everything again without them",
            kfunc::RDONLY_CAST,
            refused.len(),
            refused[0]
        );
        drop(sensor);
        let mut sensor = Self::load_with(opts, None)?;
        sensor.kfuncs.refused = true;
        log::info!("eBPF programs' kernel reads: {}", sensor.kfuncs);
        Ok(sensor)
    }

    fn load_with(opts: &LoadOptions, kfunc_id: Option<u32>) -> Result<Self, EbpfError> {
        let size = opts.sizes.ring_bytes;
        if size < 4096 || !size.is_power_of_two() {
            return Err(EbpfError::RingSize(size));
        }
        let wakeup = opts.wakeup_bytes.min(u64::from(size) / 4).max(1);
        if !opts.far_behind_wakeups {
            log::warn!(
                "far-behind wake-ups off (--test-no-far-behind-wakeups, for measurement): a storm faster than the drain loses records (counted)"
            );
        }
        // The kfunc was looked up (`load`) before aya's loader parses the
        // kernel's BTF: the scan's buffer is gone by then (the start-up
        // peak is that parse).
        let (object, kfuncs) = kfunc::resolve(opts.variant.object(), kfunc_id);
        let mut bpf = EbpfLoader::new()
            .map_max_entries("events", size)
            .map_max_entries("procs", opts.sizes.procs)
            .map_max_entries("udp_flows", opts.sizes.udp_flows)
            .override_global("wakeup_bytes", &wakeup, true)
            .override_global(
                "far_behind_bytes",
                &if opts.far_behind_wakeups {
                    4 * wakeup
                } else {
                    u64::MAX
                },
                true,
            )
            // The programs branch on it where a NULL check of the cast
            // would make the verifier walk both sides (kfunc.bpf.h).
            .override_global("rdonly_cast_resolved", &u32::from(kfuncs.resolved()), true)
            .load(&object)
            .map_err(EbpfError::Load)?;
        drop(object);
        // Filters first: no event may pass before they are in place.
        let mut mounts = MountTable::default();
        let exe_ids = exe_identity::kernel_ids(opts.filters.process_paths(), &mut mounts);
        super::filter_maps::write(&mut bpf, &opts.filters, &exe_ids, None)?;
        // And the running processes whose executable is excluded (the
        // exec hook marks those started from now on): before any program
        // runs, at start and at every switch back to eBPF (fresh maps).
        // A failure reports more, never less: logged, and the load goes on.
        // No excluded executables (the usual case): no /proc walk at load.
        let marked = if opts.filters.processes.is_empty() {
            Ok(0)
        } else {
            crate::procfs::snapshot(std::path::Path::new("/proc"))
                .map_err(EbpfError::Snapshot)
                .and_then(|snapshot| {
                    super::filter_maps::mark_running(&mut bpf, &opts.filters, &snapshot, false)
                })
        };
        match marked {
            Ok(0) => {}
            Ok(n) => log::info!("{n} running processes have an excluded executable"),
            Err(e) => log::error!(
                "running processes with an excluded executable are not marked: {}; \
                 their events are reported until they run exec again",
                chain(&e)
            ),
        }
        let mut hooks = Vec::new();
        for spec in programs() {
            let program = spec.name;
            let broken = opts
                .break_programs
                .iter()
                .any(|p| p == program || p == "all");
            // A hook only some kernels have: attached where it exists (by
            // its older name too), else listed as not covered.
            let mut hook_spec = spec.hook;
            if let (Some(since), Hook::RawTracepoint(tp)) = (spec.since, spec.hook) {
                match available(since, tp) {
                    Ok(name) => hook_spec = Hook::RawTracepoint(name),
                    Err(()) => {
                        log::info!(
                            "eBPF program {program} not loaded: this kernel has no {}",
                            since.what
                        );
                        hooks.push(HookStatus {
                            program,
                            domain: spec.domain,
                            hook: format!("raw tracepoint {tp}"),
                            error: None,
                            absent: Some(since.what),
                        });
                        continue;
                    }
                }
            }
            let (hook, error) = match hook_spec {
                Hook::RawTracepoint(tp) => {
                    let target = if broken {
                        format!("mdatp_nonexistent_{tp}")
                    } else {
                        tp.to_string()
                    };
                    let e = attach_raw_tracepoint(&mut bpf, program, &target).err();
                    (format!("raw tracepoint {target}"), e)
                }
                Hook::TailCall(map, slot) => {
                    let e = if broken {
                        Err(AttachError::NotInObject(format!(
                            "{program} (broken by test)"
                        )))
                    } else {
                        set_tail_call(&mut bpf, program, map, slot)
                    };
                    // The call's name with its slot: health's hooks are
                    // read by people ("sys_calls[257]" alone is not).
                    let call = program.trim_start_matches("mdatp_");
                    (format!("tail call {map}[{slot}] ({call})"), e.err())
                }
            };
            let hook = match (opts.variant, spec.domain) {
                (SyscallVariant::Typed, _) | (_, Domain::Process | Domain::IoUring) => hook,
                // The compat build says so wherever the hook is shown.
                (v, _) => format!("{hook} ({} build)", v.name()),
            };
            if let Some(e) = &error {
                log::error!(
                    "eBPF program {program} on {hook} failed: {}; the other programs keep running",
                    chain(e)
                );
            }
            hooks.push(HookStatus {
                program,
                domain: spec.domain,
                hook,
                error: error.map(|e| verifier_verdict(&chain(&e))),
                absent: None,
            });
        }
        not_entered_without_dispatcher(&mut hooks);
        if hooks
            .iter()
            .all(|h| h.error.is_some() || h.absent.is_some())
        {
            let why = hooks
                .iter()
                .filter_map(|h| h.error.as_deref())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(EbpfError::NothingAttached(why));
        }
        // The load's parsing peak is over: give it back (heap.rs).
        crate::heap::return_freed_memory();
        Ok(Self {
            bpf,
            hooks,
            sizes: opts.sizes,
            kfuncs,
            exe_ids,
            exe_ids_at: Instant::now(),
            mounts,
        })
    }

    /// Periodic: the excluded executables' files looked up again; a
    /// changed one (an upgrade) is written into the map.
    pub fn refresh_exe_ids(&mut self, filters: &KernelFilters) {
        if filters.processes.is_empty() || self.exe_ids_at.elapsed() < EXE_ID_REFRESH {
            return;
        }
        self.exe_ids_at = Instant::now();
        let ids = exe_identity::kernel_ids(filters.process_paths(), &mut self.mounts);
        if ids == self.exe_ids {
            return;
        }
        match super::filter_maps::write_exe_ids(&mut self.bpf, filters, &ids) {
            Ok(()) => {
                log::info!("an excluded executable's file changed: exclusion map updated");
                self.exe_ids = ids;
            }
            Err(e) => log::error!(
                "excluded executables not updated: {}",
                crate::error_text::chain(&e)
            ),
        }
    }

    /// A reload: the maps move from `old` to `new`, make before break.
    pub fn rewrite_filters(
        &mut self,
        new: &KernelFilters,
        old: &KernelFilters,
    ) -> Result<(), EbpfError> {
        let ids = exe_identity::kernel_ids(new.process_paths(), &mut self.mounts);
        super::filter_maps::write(&mut self.bpf, new, &ids, Some(old))?;
        self.exe_ids = ids;
        self.exe_ids_at = Instant::now();
        if new.processes != old.processes {
            let snapshot = crate::procfs::snapshot(std::path::Path::new("/proc"))
                .map_err(EbpfError::Snapshot)?;
            super::filter_maps::mark_running(&mut self.bpf, new, &snapshot, true)?;
        }
        Ok(())
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, EbpfError> {
        let map = self
            .bpf
            .take_map("events")
            .ok_or(EbpfError::MissingMap("events"))?;
        RingBuf::try_from(map).map_err(|source| EbpfError::Map {
            name: "events",
            source,
        })
    }

    pub fn take_counters(&mut self) -> Result<BpfCounters, EbpfError> {
        let map = self
            .bpf
            .take_map("counters")
            .ok_or(EbpfError::MissingMap("counters"))?;
        let arr = PerCpuArray::try_from(map).map_err(|source| EbpfError::Map {
            name: "counters",
            source,
        })?;
        Ok(BpfCounters::new(arr))
    }
}

/// Why one program did not attach.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("program {0} is not in the object")]
    NotInObject(String),
    #[error("wrong program type")]
    WrongType(#[source] aya::programs::ProgramError),
    #[error("load")]
    Load(#[source] aya::programs::ProgramError),
    #[error("attach")]
    Attach(#[source] aya::programs::ProgramError),
    #[error("tail-call map")]
    Map(#[source] aya::maps::MapError),
}

/// The named program of the object, as program type `P`.
fn program<'a, P>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, AttachError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    bpf.program_mut(name)
        .ok_or_else(|| AttachError::NotInObject(name.to_string()))?
        .try_into()
        .map_err(AttachError::WrongType)
}

/// The system call programs (both ABIs) run only through their
/// dispatcher: when it failed, they are marked failed too (with its
/// reason), so that their kinds are not counted as served and fall to the
/// audit subsystem, and health lists the 32-bit way around as open.
fn not_entered_without_dispatcher(hooks: &mut [HookStatus]) {
    let Some(why) = hooks
        .iter()
        .find(|h| h.program == SYS_EXIT_DISPATCH.name)
        .and_then(|h| h.error.clone())
    else {
        return;
    };
    log::error!(
        "eBPF: the system call programs are not entered: their dispatcher {} failed; \
         their kinds go to the audit subsystem",
        SYS_EXIT_DISPATCH.name
    );
    let entered: Vec<&str> = programs()
        // Every tail-called program is this dispatcher's (sys_calls and
        // ia32_calls).
        .filter(|p| matches!(p.hook, Hook::TailCall(..)))
        .map(|p| p.name)
        .collect();
    for h in hooks.iter_mut() {
        if entered.contains(&h.program) && h.error.is_none() {
            h.error = Some(format!(
                "not entered: its dispatcher {} failed: {why}",
                SYS_EXIT_DISPATCH.name
            ));
        }
    }
}

fn attach_raw_tracepoint(bpf: &mut Ebpf, name: &str, tp: &str) -> Result<(), AttachError> {
    let prog: &mut RawTracePoint = program(bpf, name)?;
    prog.load().map_err(AttachError::Load)?;
    prog.attach(tp).map_err(AttachError::Attach)?;
    Ok(())
}

/// Loads a program entered by a tail call and puts it in its slot.
fn set_tail_call(bpf: &mut Ebpf, name: &str, map: &str, slot: u32) -> Result<(), AttachError> {
    let prog: &mut RawTracePoint = program(bpf, name)?;
    prog.load().map_err(AttachError::Load)?;
    let fd = prog
        .fd()
        .and_then(|fd| fd.try_clone().map_err(Into::into))
        .map_err(AttachError::Load)?;
    let array = bpf
        .map_mut(map)
        .ok_or_else(|| AttachError::NotInObject(map.to_string()))?;
    let mut array = ProgramArray::try_from(array).map_err(AttachError::Map)?;
    array.set(slot, &fd, 0).map_err(AttachError::Map)?;
    Ok(())
}

/// "what: cause: cause" — aya's errors keep the errno (and the
/// verifier's log) in their sources.
/// A load error as health shows it: the verifier's log runs to thousands
/// of lines (kept whole in the daemon's log), while the verdict is in its
/// last lines before the statistics.
fn verifier_verdict(error: &str) -> String {
    const MARK: &str = "Verifier output:";
    let Some(at) = error.find(MARK) else {
        return error.to_string();
    };
    let stats = ["verification time", "stack depth", "processed "];
    let verdict: Vec<&str> = error[at + MARK.len()..]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(':') && !stats.iter().any(|s| l.starts_with(s)))
        .collect();
    let tail = &verdict[verdict.len().saturating_sub(2)..];
    format!("{}{MARK} ... {}", &error[..at], tail.join(" / "))
}

#[cfg(test)]
mod tests {
    use super::verifier_verdict;

    #[test]
    fn health_keeps_the_verifiers_verdict_not_its_whole_log() {
        // The shape of a real refusal (Debian 6.1 guest, VM test).
        let e = "load: the BPF_PROG_LOAD syscall returned Permission denied (os error 13). \
                 Verifier output: 0: R1=ctx(off=0,imm=0) R10=fp0\n\
                 ; int mdatp_exec(struct bpf_raw_tracepoint_args *ctx)\n\
                 0: (bf) r6 = r1\n\
                 invalid access to map value, value_size=8708 off=8196 size=4095\n\
                 R1 min value is outside of the allowed memory range\n\
                 verification time 518757 usec\nstack depth 128\n\
                 processed 39533 insns (limit 1000000) max_states_per_insn 14\n: Permission denied (os error 13)";
        let v = verifier_verdict(e);
        assert_eq!(
            v,
            "load: the BPF_PROG_LOAD syscall returned Permission denied (os error 13). \
             Verifier output: ... invalid access to map value, value_size=8708 off=8196 size=4095 \
             / R1 min value is outside of the allowed memory range"
        );
        assert_eq!(
            verifier_verdict("attach: no such tracepoint"),
            "attach: no such tracepoint"
        );
    }
}
