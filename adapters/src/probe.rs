//! The system probe: CPU load and memory from `/proc`, power from
//! `/sys/class/power_supply`, as the engine's [`SystemState`].

use std::fs;
use std::path::{Path, PathBuf};

use semantica_core::{SystemProbe, SystemState};

/// CPU load under which the machine counts as idle, in percent. A daemon has no view of
/// keyboard and mouse; a quiet CPU over a whole sampling period is the signal it has.
pub const IDLE_CPU_PERCENT_MAX: u32 = 10;

/// Reads `/proc/stat`, `/proc/meminfo` and `/sys/class/power_supply` under a root that
/// tests can point elsewhere.
#[derive(Debug)]
pub struct ProcProbe {
    proc_root: PathBuf,
    power_root: PathBuf,
    /// (busy, total) jiffies at the last sample.
    last_cpu: Option<(u64, u64)>,
    pub memory_used_percent: u32,
}

impl Default for ProcProbe {
    fn default() -> ProcProbe {
        ProcProbe::with_roots("/proc", "/sys/class/power_supply")
    }
}

impl ProcProbe {
    pub fn with_roots(proc_root: impl Into<PathBuf>, power_root: impl Into<PathBuf>) -> ProcProbe {
        ProcProbe { proc_root: proc_root.into(), power_root: power_root.into(), last_cpu: None, memory_used_percent: 0 }
    }

    /// CPU load since the last call, in percent; 0 on the first call or when unreadable.
    fn cpu_load_percent(&mut self) -> u32 {
        let Some((busy, total)) = read_cpu(&self.proc_root.join("stat")) else { return 0 };
        let load = match self.last_cpu {
            Some((last_busy, last_total)) if total > last_total => {
                let busy_delta = busy.saturating_sub(last_busy);
                (busy_delta * 100 / (total - last_total)).min(100) as u32
            }
            _ => 0,
        };
        self.last_cpu = Some((busy, total));
        load
    }
}

impl SystemProbe for ProcProbe {
    fn sample(&mut self) -> SystemState {
        let cpu_load_percent = self.cpu_load_percent();
        self.memory_used_percent = read_memory_used_percent(&self.proc_root.join("meminfo")).unwrap_or(0);
        SystemState {
            cpu_load_percent,
            is_idle: self.last_cpu.is_some() && cpu_load_percent <= IDLE_CPU_PERCENT_MAX,
            is_charging: on_mains(&self.power_root),
        }
    }
}

/// (busy, total) jiffies from the aggregate `cpu` line of `/proc/stat`.
fn read_cpu(path: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().take(8).sum();
    // idle + iowait are not busy
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn read_memory_used_percent(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|line| line.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0).then(|| ((total.saturating_sub(available)) * 100 / total) as u32)
}

/// On mains unless a battery says it is discharging. No battery at all means mains.
fn on_mains(power_root: &Path) -> bool {
    let Ok(entries) = fs::read_dir(power_root) else { return true };
    let mut batteries = 0;
    let mut discharging = 0;
    let mut mains_online = false;
    for entry in entries.flatten() {
        let read =
            |name: &str| fs::read_to_string(entry.path().join(name)).map(|s| s.trim().to_owned()).unwrap_or_default();
        match read("type").as_str() {
            "Battery" => {
                batteries += 1;
                if read("status") == "Discharging" {
                    discharging += 1;
                }
            }
            "Mains" | "USB" => mains_online |= read("online") == "1",
            _ => {}
        }
    }
    mains_online || batteries == 0 || discharging < batteries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn cpu_load_is_the_busy_share_between_two_samples() {
        let root = tempfile::tempdir().unwrap();
        let proc_root = root.path().join("proc");
        write(&proc_root, "stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
        write(&proc_root, "meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n");
        let mut probe = ProcProbe::with_roots(&proc_root, root.path().join("none"));
        let first = probe.sample();
        assert_eq!((first.cpu_load_percent, first.is_idle), (0, true));
        // 300 more jiffies, 150 of them busy: 50 %.
        write(&proc_root, "stat", "cpu  200 0 150 950 0 0 0 0 0 0\n");
        let second = probe.sample();
        assert_eq!((second.cpu_load_percent, second.is_idle, second.is_charging), (50, false, true));
        assert_eq!(probe.memory_used_percent, 75);
        // A quiet period: idle.
        write(&proc_root, "stat", "cpu  201 0 150 1949 0 0 0 0 0 0\n");
        assert!(probe.sample().is_idle);
    }

    #[test]
    fn power_supply_decides_charging() {
        let root = tempfile::tempdir().unwrap();
        let power = root.path().join("power");
        assert!(on_mains(&power), "no power_supply directory: a desktop on mains");
        write(&power, "BAT0/type", "Battery\n");
        write(&power, "BAT0/status", "Discharging\n");
        assert!(!on_mains(&power));
        write(&power, "AC/type", "Mains\n");
        write(&power, "AC/online", "1\n");
        assert!(on_mains(&power));
        write(&power, "AC/online", "0\n");
        write(&power, "BAT0/status", "Charging\n");
        assert!(on_mains(&power));
    }

    #[test]
    fn the_real_machine_can_be_sampled() {
        let mut probe = ProcProbe::default();
        let first = probe.sample();
        let second = probe.sample();
        assert!(first.cpu_load_percent <= 100 && second.cpu_load_percent <= 100);
        assert!(probe.memory_used_percent <= 100);
    }
}
