//! The model folder's manifest: which weight files Ongi uses, with their pinned SHA-256 and
//! size, licence, download source and I/O contract; checking a folder against it
//! ([`verify()`]) and installing the files into a folder ([`fetch_with`], behind
//! `ongi models fetch`).
//!
//! - The production manifest is `shared/src/model/production.toml`, embedded in every binary
//!   ([`Manifest::production`]). A model folder may carry its own `manifest.toml`
//!   ([`Manifest::load`]); the test models in `shared/tests/fixtures/models/` do.
//! - A file is named inside the folder, or inside one folder of it (`sd15/unet.safetensors`),
//!   and says which deployable loads it ([`UsedBy`]: the functions unless it says the GPU
//!   worker); the commands work on the functions' files unless asked for others
//!   ([`Manifest::only_used_by`]).
//! - A file is hashed while it is streamed, never read whole (the CLIP graphs are 350 MB),
//!   and its hash is stamped with its size and modification time (`.ongi-sha256` in the
//!   file's folder), so a start-up reads the stamp instead of the file while the file is
//!   unchanged.
//! - A download goes to `.<file>.part` beside the file and is renamed to its final name only after its
//!   size and SHA-256 match the manifest, so a file under its final name is never a partial
//!   or unchecked download; a download that fails leaves no `.part` behind. A file whose hash
//!   is not pinned yet (`sha256 = ""`) is downloaded, its hash printed, and then refused: a
//!   maintainer pins it after checking the bytes.
//! - A file the publisher ships in another format (`[model.convert]`: LAION's aesthetic head
//!   is a PyTorch `.pth`) is downloaded, checked against the pins of the publisher's file,
//!   converted without running any of its code, and installed only when the result matches
//!   the pins of the installed file.
//! - A file already in the folder is never deleted or overwritten by anything but a verified
//!   download, and even then it is kept aside (`<file>.replaced`), never lost: it may be a
//!   user's own model. [`Mismatched`] says whether `fetch` replaces such a file at all
//!   (`ongi models fetch` does; `ongi serve`'s start-up leaves it where it is).
//! - Every error is one line that names the file; no network access is needed to parse,
//!   verify or test any of this.
//! - What `fetch` does is reported, file by file, to a callback as [`FetchEvent`]s (the CLI
//!   draws its progress bars from them).
//!
//! The manifest's types and parsing are in `schema`, checking a folder in `verify`, the hash
//! stamps in `stamp`, installing a manifest's files in `fetch`, one download (`.part`, checks,
//! rename) in `download`, and the conversion of a download in `convert`.

mod convert;
mod download;
mod fetch;
mod schema;
mod stamp;
#[cfg(test)]
pub(in crate::model) mod test_support;
mod verify;

pub(in crate::model) use download::{Failure, download};
pub(in crate::model) use fetch::http_client;
pub use fetch::{FetchError, FetchEvent, FetchOptions, FetchReport, Mismatched, fetch_with};
pub use schema::{
    Conversion, ConvertFrom, DType, Dim, MANIFEST_FILE, Manifest, ManifestError, ModelEntry, PRODUCTION_ORIGIN,
    TensorSpec, UsedBy,
};
pub use stamp::{STAMP_FILE, sha256_stamped};
pub use verify::{Hashing, ModelCheck, ModelStatus, VerifyReport, sha256_file, verify, verify_with};
