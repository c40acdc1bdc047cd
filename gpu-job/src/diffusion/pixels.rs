//! RGB images to and from the VAE's pixel tensors ([1, 3, H, W], values in [-1, 1]).

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use super::DiffusionError;

/// Built on the CPU in channel-major order and then moved, so no strided permute reaches the
/// device.
pub(crate) fn image_to_tensor(image: &RgbImage, device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    let mut chw = vec![0f32; 3 * w * h];
    for (i, px) in raw.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            chw[c * w * h + i] = f32::from(v) / 127.5 - 1.;
        }
    }
    Tensor::from_vec(chw, (1, 3, h, w), &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)
}

/// The first image of a decoded batch. A NaN or infinity anywhere means the run failed
/// (f16 overflow, broken weights): that is an error, never a black or white picture.
pub(crate) fn tensor_to_image(decoded: &Tensor) -> Result<RgbImage, DiffusionError> {
    let (_, channels, h, w) = decoded.dims4()?;
    if channels != 3 {
        return Err(DiffusionError::BadWeights(format!(
            "the VAE decodes {channels} channels, not 3"
        )));
    }
    let chw = decoded
        .get(0)?
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if let Some(bad) = chw.iter().find(|v| !v.is_finite()) {
        return Err(DiffusionError::NonFinite(format!("decoded image contains {bad}")));
    }
    let mut rgb = vec![0u8; 3 * w * h];
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        for (c, out) in px.iter_mut().enumerate() {
            *out = ((chw[c * w * h + i] + 1.) * 127.5).round().clamp(0., 255.) as u8;
        }
    }
    // Cannot fail: the buffer has exactly w*h*3 bytes.
    RgbImage::from_raw(w as u32, h as u32, rgb)
        .ok_or_else(|| DiffusionError::Candle(candle_core::Error::Msg("image buffer size".into())))
}
