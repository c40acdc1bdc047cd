//! A memory limit for the server under test, as a container's: a cgroup of its own with
//! `memory.max` (cgroup v2) or `memory.limit_in_bytes` (v1), made beside this process's own
//! cgroup and removed when dropped. Past the limit the kernel kills the server, as Cloud Run
//! would; the report says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub struct MemoryCage {
    dir: PathBuf,
    version: u8,
}

impl MemoryCage {
    /// A new cgroup limited to `mib` MiB of memory (swap included where the kernel counts it).
    pub fn new(mib: u64) -> anyhow::Result<Self> {
        if mib < 64 {
            bail!("--memory-limit-mib {mib}: the server needs at least 64 MiB");
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
        let name = format!("ongi-bench-{}", std::process::id());
        let bytes = (mib << 20).to_string();
        let (dir, version) = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
            (
                Path::new("/sys/fs/cgroup")
                    .join(path.trim_start_matches('/'))
                    .join(&name),
                2,
            )
        } else {
            let path = own
                .lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))
                .context("this process is in no memory cgroup")?;
            (
                Path::new("/sys/fs/cgroup/memory")
                    .join(path.trim_start_matches('/'))
                    .join(&name),
                1,
            )
        };
        std::fs::create_dir(&dir).with_context(|| format!("cannot make the cgroup {} (run as root)", dir.display()))?;
        let cage = Self { dir, version };
        if version == 2 {
            cage.write("memory.max", &bytes)?;
            let _ = cage.write("memory.swap.max", "0");
        } else {
            cage.write("memory.limit_in_bytes", &bytes)?;
            let _ = cage.write("memory.memsw.limit_in_bytes", &bytes);
        }
        Ok(cage)
    }

    fn write(&self, file: &str, value: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.join(file), value).with_context(|| format!("cannot write {value} to {file}"))
    }

    /// Moves process `pid` into the cgroup.
    pub fn admit(&self, pid: u32) -> anyhow::Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Processes the kernel killed for memory in this cgroup.
    pub fn oom_kills(&self) -> Option<u64> {
        let (file, key) = if self.version == 2 {
            ("memory.events", "oom_kill ")
        } else {
            ("memory.oom_control", "oom_kill ")
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
    }
}

impl Drop for MemoryCage {
    fn drop(&mut self) {
        // The server has exited by now; an empty cgroup can be removed.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
