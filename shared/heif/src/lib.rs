//! A small safe layer over libheif's C API: what ongi-shared needs to decode the primary
//! image of a HEIC or AVIF file (size limit, size, sample depth, EXIF block, 8-bit RGB pixels).
//!
//! Why here and by hand: ongi-shared forbids `unsafe`, so the FFI lives in this crate of
//! its own. The bindings are libheif-sys 1.14 (the libheif-rs project's): current
//! libheif-rs releases need libheif 1.17+, Debian bookworm (CI and the Docker base) ships
//! 1.15, and the last libheif-rs that builds against 1.15 (0.20) reads the file in the call
//! that creates the context, so libheif's size limit could not be set before parsing.
//!
//! Without the `libheif` feature the crate is empty, so the workspace builds on a machine
//! without libheif-dev.

#![cfg(feature = "libheif")]

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr;
use std::sync::Once;

use libheif_sys as lh;

/// A libheif error: its message, and whether a security limit refused the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HeifError {
    pub message: String,
    pub security_limit: bool,
}

impl HeifError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            security_limit: false,
        }
    }
}

fn check(err: lh::heif_error) -> Result<(), HeifError> {
    if err.code == lh::heif_error_code_heif_error_Ok {
        return Ok(());
    }
    let message = if err.message.is_null() {
        String::from("unknown libheif error")
    } else {
        // SAFETY: libheif's messages are NUL-terminated and live at least as long as the
        // context that returned them; this copies it at once.
        unsafe { CStr::from_ptr(err.message) }.to_string_lossy().into_owned()
    };
    Err(HeifError {
        message,
        security_limit: err.subcode == lh::heif_suberror_code_heif_suberror_Security_limit_exceeded,
    })
}

/// A context reading `bytes` in place (never copied): it cannot outlive them.
struct Context<'a> {
    raw: *mut lh::heif_context,
    _bytes: PhantomData<&'a [u8]>,
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from heif_context_alloc and is freed once, here.
        unsafe { lh::heif_context_free(self.raw) }
    }
}

struct Handle(*mut lh::heif_image_handle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: from heif_context_get_primary_image_handle, released once.
        unsafe { lh::heif_image_handle_release(self.0) }
    }
}

struct Image(*mut lh::heif_image);

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: from heif_decode_image, released once.
        unsafe { lh::heif_image_release(self.0) }
    }
}

/// The primary image of a parsed HEIF file, not decoded yet.
pub struct Primary<'a> {
    // Field order matters: the handle is released before the context is freed.
    handle: Handle,
    _context: Context<'a>,
}

impl<'a> Primary<'a> {
    /// Parses `bytes` as far as the primary image. `max_side` is libheif's own limit on
    /// either side, applied while parsing (before any pixel is allocated). Grid tiles are
    /// decoded on the calling thread (no libheif threads).
    pub fn read(bytes: &'a [u8], max_side: u32) -> Result<Self, HeifError> {
        static INIT: Once = Once::new();
        // SAFETY: heif_init with no parameters loads the built-in plugins; once per process
        // and never undone (heif_deinit while another thread decodes would be unsound). A
        // failed init shows as the errors of the calls below.
        INIT.call_once(|| {
            let _ = unsafe { lh::heif_init(ptr::null_mut()) };
        });
        // SAFETY: plain allocation; null is checked.
        let raw = unsafe { lh::heif_context_alloc() };
        if raw.is_null() {
            return Err(HeifError::new("libheif could not allocate a context"));
        }
        let context = Context {
            raw,
            _bytes: PhantomData,
        };
        let side = libc::c_int::try_from(max_side).unwrap_or(libc::c_int::MAX);
        // SAFETY: a live context.
        unsafe {
            lh::heif_context_set_maximum_image_size_limit(context.raw, side);
            lh::heif_context_set_max_decoding_threads(context.raw, 0);
        }
        // SAFETY: the context reads `bytes` in place; `Context<'a>` keeps it from outliving them.
        check(unsafe {
            lh::heif_context_read_from_memory_without_copy(context.raw, bytes.as_ptr().cast(), bytes.len(), ptr::null())
        })?;
        let mut handle = ptr::null_mut();
        // SAFETY: a live context and a valid out-pointer.
        check(unsafe { lh::heif_context_get_primary_image_handle(context.raw, &mut handle) })?;
        if handle.is_null() {
            return Err(HeifError::new("no primary image"));
        }
        Ok(Self {
            handle: Handle(handle),
            _context: context,
        })
    }

    /// The size after the HEIF transformations (`irot` by 90° swaps it), as decoded.
    pub fn size(&self) -> (u32, u32) {
        // SAFETY: a live handle.
        let (w, h) = unsafe {
            (
                lh::heif_image_handle_get_width(self.handle.0),
                lh::heif_image_handle_get_height(self.handle.0),
            )
        };
        (u32::try_from(w).unwrap_or(0), u32::try_from(h).unwrap_or(0))
    }

    /// The deepest of its luma and chroma samples, in bits: 8, 10 or 12 in practice (8 when
    /// the file does not say).
    pub fn bits_per_sample(&self) -> u8 {
        // SAFETY: a live handle; both return -1 when the file does not say.
        let (luma, chroma) = unsafe {
            (
                lh::heif_image_handle_get_luma_bits_per_pixel(self.handle.0),
                lh::heif_image_handle_get_chroma_bits_per_pixel(self.handle.0),
            )
        };
        u8::try_from(luma.max(chroma).clamp(8, 16)).unwrap_or(8)
    }

    pub fn has_alpha(&self) -> bool {
        // SAFETY: a live handle.
        unsafe { lh::heif_image_handle_has_alpha_channel(self.handle.0) != 0 }
    }

    /// The first `Exif` metadata block as stored (HEIF's 4-byte TIFF-header offset first),
    /// when there is one of at most `max_bytes`.
    pub fn exif(&self, max_bytes: usize) -> Option<Vec<u8>> {
        let mut id: lh::heif_item_id = 0;
        // SAFETY: a live handle; room for exactly one ID is passed.
        let found = unsafe {
            lh::heif_image_handle_get_list_of_metadata_block_IDs(self.handle.0, c"Exif".as_ptr(), &mut id, 1)
        };
        if found < 1 {
            return None;
        }
        // SAFETY: a live handle and an ID it listed.
        let size = unsafe { lh::heif_image_handle_get_metadata_size(self.handle.0, id) };
        if size == 0 || size > max_bytes {
            return None;
        }
        let mut block = vec![0u8; size];
        // SAFETY: `block` has room for the `size` bytes libheif writes.
        check(unsafe { lh::heif_image_handle_get_metadata(self.handle.0, id, block.as_mut_ptr().cast()) }).ok()?;
        Some(block)
    }

    /// Decodes to interleaved 8-bit RGB, `(width, height, pixels)`, with the HEIF
    /// transformations applied; an alpha channel is dropped, deeper samples are scaled to 8 bits.
    pub fn decode_rgb(&self) -> Result<(u32, u32, Vec<u8>), HeifError> {
        // SAFETY: libheif allocates its own options struct (its version, its defaults).
        let options = unsafe { lh::heif_decoding_options_alloc() };
        if options.is_null() {
            return Err(HeifError::new("libheif could not allocate its decoding options"));
        }
        // SAFETY: `options` is live until freed below; `convert_hdr_to_8bit` is in every
        // version of the struct that libheif 1.14+ allocates.
        unsafe { (*options).convert_hdr_to_8bit = 1 };
        let mut raw = ptr::null_mut();
        // SAFETY: a live handle, a valid out-pointer and options.
        let err = unsafe {
            lh::heif_decode_image(
                self.handle.0,
                &mut raw,
                lh::heif_colorspace_heif_colorspace_RGB,
                lh::heif_chroma_heif_chroma_interleaved_RGB,
                options,
            )
        };
        // SAFETY: freed once, after its last use.
        unsafe { lh::heif_decoding_options_free(options) };
        check(err)?;
        if raw.is_null() {
            return Err(HeifError::new("the decoder returned no image"));
        }
        let image = Image(raw);
        let channel = lh::heif_channel_heif_channel_interleaved;
        let mut stride: libc::c_int = 0;
        // SAFETY: a live image; the plane lives as long as `image`.
        let (w, h, plane) = unsafe {
            (
                lh::heif_image_get_width(image.0, channel),
                lh::heif_image_get_height(image.0, channel),
                lh::heif_image_get_plane_readonly(image.0, channel, &mut stride),
            )
        };
        let (width, height) = (u32::try_from(w).unwrap_or(0), u32::try_from(h).unwrap_or(0));
        let stride = usize::try_from(stride).unwrap_or(0);
        let row = width as usize * 3;
        if plane.is_null() || width == 0 || height == 0 || stride < row {
            return Err(HeifError::new(format!(
                "the decoder returned a {w}x{h} image with rows of {stride} bytes"
            )));
        }
        // SAFETY: libheif's interleaved plane is `height` rows of `stride` bytes.
        let data = unsafe { std::slice::from_raw_parts(plane, stride * height as usize) };
        let mut out = Vec::with_capacity(row * height as usize);
        for line in data.chunks_exact(stride) {
            out.extend_from_slice(&line[..row]);
        }
        Ok((width, height, out))
    }
}
