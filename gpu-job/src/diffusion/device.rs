//! Which device (and so which dtype) the model runs on.

use candle_core::{DType, Device, DeviceLocation};

use super::DiffusionError;

/// Where to run the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA when this build has it (feature `cuda`) and GPU 0 answers, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA GPU 0, or an error: a worker configured for the GPU must not silently crawl on
    /// the CPU.
    Cuda,
}

impl DeviceChoice {
    pub(crate) fn resolve(self) -> Result<Device, DiffusionError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(DiffusionError::Device(
                        "CUDA was asked for but this gpu-job was built without the `cuda` feature".into(),
                    ));
                }
                Device::new_cuda(0).map_err(|e| DiffusionError::Device(format!("CUDA GPU 0 does not answer: {e}")))
            }
            DeviceChoice::Auto => {
                if !candle_core::utils::cuda_is_available() {
                    return Ok(Device::Cpu);
                }
                match Device::new_cuda(0) {
                    Ok(device) => Ok(device),
                    Err(e) => {
                        tracing::warn!(error = %e, "no CUDA GPU answers; Stable Diffusion runs on the CPU");
                        Ok(Device::Cpu)
                    }
                }
            }
        }
    }
}

/// f16 halves the memory and doubles the speed on a GPU (SD 1.5's VAE is safe in f16,
/// unlike SDXL's); CPUs have no fast f16 path in candle, so they get f32.
pub(crate) fn model_dtype(device: &Device) -> DType {
    if device.is_cuda() { DType::F16 } else { DType::F32 }
}

/// "cpu f32", "cuda:0 f16".
pub(crate) fn label(device: &Device, dtype: DType) -> String {
    let place = match device.location() {
        DeviceLocation::Cpu => "cpu".to_string(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    };
    format!("{place} {}", dtype.as_str())
}
