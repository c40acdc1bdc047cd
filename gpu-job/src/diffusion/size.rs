//! The working size of a photo for diffusion.

/// The long side SD 1.5 was trained at; far from it, results degrade (repeated subjects when
/// larger, mush when smaller), so photos of any size are scaled to it, small ones up.
const LONG_SIDE: u32 = 512;
/// The VAE's latent is 1/8 of the image, so both sides must be multiples of 8.
const MULTIPLE: u32 = 8;
/// 64 px = an 8x8 latent, the least the UNet's downsampling can work with.
const MIN_SIDE: u32 = 64;

/// The size a `width` x `height` photo is resized to before diffusion (and the size of the
/// styled image): long side 512, aspect ratio kept, both sides rounded to the nearest multiple
/// of 8 and at least 64. A zero side (no real photo has one) counts as 1.
pub fn target_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let long = u64::from(LONG_SIDE);
    // The short side in exact integer arithmetic, rounded to the nearest pixel.
    let scale = |short: u64, long_in: u64| ((short * long * 2 + long_in) / (long_in * 2)) as u32;
    let (tw, th) = if w >= h {
        (LONG_SIDE, scale(h, w))
    } else {
        (scale(w, h), LONG_SIDE)
    };
    (round_side(tw), round_side(th))
}

fn round_side(side: u32) -> u32 {
    let rounded = (side + MULTIPLE / 2) / MULTIPLE * MULTIPLE;
    rounded.max(MIN_SIDE)
}
