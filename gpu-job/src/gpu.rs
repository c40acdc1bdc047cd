//! GPU memory for the `ongi_style_gpu_memory_bytes` gauge. Read from `nvidia-smi`, which
//! the NVIDIA container runtime mounts into the worker's container, rather than through
//! CUDA bindings: it compiles everywhere and costs nothing on CPU builds, where it is off.

/// Memory in use on GPU 0, in bytes; `None` on CPU builds or when `nvidia-smi` is absent.
pub fn memory_used_bytes() -> Option<u64> {
    if !cfg!(feature = "cuda") {
        return None;
    }
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(mib * 1024 * 1024)
}
