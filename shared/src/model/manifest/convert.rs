//! Converting a download into the file the manifest pins, for a publisher whose format is not
//! the one Ongi loads (`[model.convert]`): LAION publishes its aesthetic head only as a
//! PyTorch `.pth`, and Ongi loads safetensors.
//!
//! A `.pth` is a pickle, and unpickling a file runs whatever functions it names. It is never
//! unpickled here: candle's pickle reader interprets the opcodes itself, turns every global
//! into a name, and recognises only tensors (`torch._utils._rebuild_tensor_v2` over a
//! storage), so nothing the file names is ever called. It reads the zip format `torch.save`
//! has written since torch 1.6, not the legacy one. Before it is read at all, the download has
//! matched the pinned size and SHA-256 of the publisher's file; the conversion's result is
//! installed only when it matches the installed file's own pins.

use std::path::Path;

use candle_core::pickle::PthTensors;
use safetensors::tensor::TensorView;
use sha2::{Digest, Sha256};

use super::download::{Failure, PartFile, Pins, download_to, part_path};
use super::fetch::FetchEvent;
use super::schema::{Conversion, ConvertFrom, Dim, ModelEntry, TensorSpec};

/// Why a downloaded file could not be converted. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConvertError {
    #[error("it is not a PyTorch state dict in torch's zip format: {reason}")]
    Unreadable { reason: String },
    #[error("it has no tensor {name:?} (its tensors: {found})")]
    Missing { name: String, found: String },
    #[error("it has a tensor {name:?} that the manifest does not list")]
    Unexpected { name: String },
    #[error("its tensor {name:?} is {actual}, the manifest says {expected}")]
    Contract {
        name: String,
        actual: String,
        expected: String,
    },
    #[error("its tensor {name:?} has a value that is not finite, at index {index}")]
    NotFinite { name: String, index: usize },
    #[error("cannot write the safetensors file: {reason}")]
    Write { reason: String },
}

/// The bytes of the safetensors file holding exactly `tensors`, read from the downloaded
/// file `source` as `from` says. The same source always gives the same bytes: the file has no
/// metadata, and safetensors orders its tensors by alignment and name.
pub(super) fn convert(from: ConvertFrom, source: &Path, tensors: &[TensorSpec]) -> Result<Vec<u8>, ConvertError> {
    match from {
        ConvertFrom::PytorchStateDict => from_state_dict(source, tensors),
    }
}

fn from_state_dict(source: &Path, tensors: &[TensorSpec]) -> Result<Vec<u8>, ConvertError> {
    let unreadable = |e: candle_core::Error| ConvertError::Unreadable { reason: one_line(&e) };
    // `None`: the top-level object is the state dict itself, as `torch.save(model.state_dict())`
    // writes it.
    let pth = PthTensors::new(source, None).map_err(unreadable)?;
    let infos = pth.tensor_infos();
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for spec in tensors {
        let Some(info) = infos.get(&spec.name) else {
            let mut found: Vec<&str> = infos.keys().map(String::as_str).collect();
            found.sort_unstable();
            return Err(ConvertError::Missing {
                name: spec.name.clone(),
                found: if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                },
            });
        };
        let shape: Vec<usize> = info.layout.dims().to_vec();
        let expected: Vec<usize> = spec
            .shape
            .iter()
            .map(|d| match d {
                // usize::MAX never matches a real dimension: the manifest's check keeps
                // symbolic dimensions out of converted entries.
                Dim::Fixed(n) => usize::try_from(*n).unwrap_or(usize::MAX),
                Dim::Symbolic(_) => usize::MAX,
            })
            .collect();
        if info.dtype != candle_core::DType::F32 || shape != expected {
            let dtype = format!("{:?}", info.dtype).to_lowercase();
            let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
            return Err(ConvertError::Contract {
                name: spec.name.clone(),
                actual: format!("{dtype} [{}]", dims.join(",")),
                expected: spec.to_string(),
            });
        }
        let values: Vec<f32> = pth
            .get(&spec.name)
            .and_then(|t| t.map(|t| t.flatten_all().and_then(|t| t.to_vec1::<f32>())).transpose())
            .map_err(unreadable)?
            .ok_or_else(|| ConvertError::Missing {
                name: spec.name.clone(),
                found: "none readable".to_owned(),
            })?;
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(ConvertError::NotFinite {
                name: spec.name.clone(),
                index,
            });
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.push((spec.name.clone(), shape, bytes));
    }
    if let Some(name) = infos.keys().find(|name| !tensors.iter().any(|t| &t.name == *name)) {
        return Err(ConvertError::Unexpected { name: name.clone() });
    }
    let write = |e: safetensors::SafeTensorError| ConvertError::Write { reason: e.to_string() };
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(write)?;
    safetensors::tensor::serialize(views, None).map_err(write)
}

/// candle's errors may span lines (a context chain, a backtrace); the manifest's are one line.
fn one_line(e: &candle_core::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Downloads `entry`'s source to `.<file>.source.part` beside the file, checks it against the
/// conversion's pins, converts it, checks the result against the entry's own pins, and returns
/// it as `.<file>.part`, still armed (deleted unless installed). The download is deleted in
/// any case.
pub(super) async fn download_and_convert(
    client: &reqwest::Client,
    entry: &ModelEntry,
    conversion: &Conversion,
    dir: &Path,
    on_event: &mut (dyn FnMut(FetchEvent<'_>) + Send),
) -> Result<PartFile, Failure> {
    let source_name = entry.source_name().unwrap_or_else(|| "source".to_owned());
    let pins = Pins {
        sha256: &conversion.source_sha256,
        bytes: conversion.source_bytes,
        of_source: true,
    };
    let downloaded = download_to(
        client,
        entry,
        dir,
        part_path(dir, &entry.file, "source.part"),
        pins,
        on_event,
    )
    .await?;

    let (from, path, tensors) = (conversion.from, downloaded.path().to_owned(), entry.tensors.clone());
    let converted = tokio::task::spawn_blocking(move || convert(from, &path, &tensors))
        .await
        .map_err(|e| {
            let e = e.to_string().replace('\n', " ");
            Failure::File(format!("the conversion of {source_name} failed: {e}"))
        })?
        .map_err(|e| {
            Failure::File(format!(
                "cannot convert the downloaded {source_name}: {e}; nothing installed"
            ))
        })?;
    drop(downloaded);

    let size = converted.len() as u64;
    let actual = hex::encode(Sha256::digest(&converted));
    if let Some(expected) = entry.bytes
        && expected != size
    {
        return Err(Failure::File(format!(
            "{source_name} converted to {size} bytes (sha256 {actual}), the manifest pins {expected}: not installed"
        )));
    }
    if !entry.is_pinned() {
        return Err(Failure::File(format!(
            "the manifest has no pinned hash for it: {source_name} converted to {size} bytes with sha256 {actual}, \
             not installed; check the conversion, then pin sha256 = \"{actual}\" and bytes = {size} in the manifest"
        )));
    }
    if actual != entry.sha256 {
        return Err(Failure::File(format!(
            "{source_name} converted to a file with sha256 {actual}, the manifest pins {}: not installed",
            entry.sha256
        )));
    }
    PartFile::write(part_path(dir, &entry.file, "part"), &converted).await
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use safetensors::SafeTensors;

    use super::super::schema::Manifest;
    use super::super::test_support::sha256_hex;
    use super::*;
    use crate::model::aesthetic::AestheticHead;

    /// The `.pth` files of `shared/tests/fixtures/pth/` (made by `make_test_pth.py` there).
    fn pth(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pth")
            .join(name)
    }

    fn head_tensors() -> Vec<TensorSpec> {
        Manifest::production()
            .by_role("aesthetic-head")
            .unwrap()
            .tensors
            .clone()
    }

    /// SHA-256 of the conversion of `head.pth`: the conversion gives the same bytes every
    /// time, and a change of them must be a deliberate one.
    const HEAD_SAFETENSORS_SHA256: &str = "d29d2a91f24f30f51727f7ae595864452369ccb5a3fbefa495c08766db98f97f";

    #[test]
    fn the_fixture_head_converts_to_its_values_in_safetensors_and_always_the_same_bytes() {
        let bytes = convert(ConvertFrom::PytorchStateDict, &pth("head.pth"), &head_tensors()).unwrap();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(pth("head.expected.json")).unwrap()).unwrap();
        let floats = |name: &str| -> Vec<f32> {
            expected[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort_unstable();
        assert_eq!(names, ["bias", "weight"]);
        for (name, shape) in [("weight", vec![1, 512]), ("bias", vec![1])] {
            let tensor = file.tensor(name).unwrap();
            assert_eq!(tensor.dtype(), safetensors::Dtype::F32, "{name}");
            assert_eq!(tensor.shape(), shape.as_slice(), "{name}");
            let values: Vec<f32> = tensor
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(values, floats(name), "{name}: every value, bit for bit");
        }
        assert_eq!(sha256_hex(&bytes), HEAD_SAFETENSORS_SHA256);
        let again = convert(ConvertFrom::PytorchStateDict, &pth("head.pth"), &head_tensors()).unwrap();
        assert_eq!(again, bytes);

        // It is what the aesthetic head loads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let head = AestheticHead::load(&path).unwrap();
        let weight = floats("weight");
        let unit: Vec<f32> = (0..512).map(|i| if i == 3 { 1.0 } else { 0.0 }).collect();
        assert_eq!(head.score(&unit), weight[3] + floats("bias")[0]);
    }

    #[test]
    fn a_pth_that_is_not_the_head_is_refused_in_one_line_naming_what_is_wrong() {
        let cases = [
            ("wrong-name.pth", "no tensor \"weight\" (its tensors: bias, weights)"),
            (
                "wrong-shape.pth",
                "tensor \"weight\" is f32 [1,256], the manifest says weight f32 [1,512]",
            ),
            (
                "wrong-dtype.pth",
                "tensor \"weight\" is f64 [1,512], the manifest says weight f32 [1,512]",
            ),
            (
                "not-finite.pth",
                "tensor \"weight\" has a value that is not finite, at index 7",
            ),
            ("extra-tensor.pth", "tensor \"scale\" that the manifest does not list"),
            ("not-zip.pth", "not a PyTorch state dict in torch's zip format"),
        ];
        for (file, expected) in cases {
            let e = convert(ConvertFrom::PytorchStateDict, &pth(file), &head_tensors()).unwrap_err();
            let message = e.to_string();
            assert!(!message.contains('\n'), "{file}: one line: {message:?}");
            assert!(message.contains(expected), "{file}: {message}");
        }
    }

    /// The conversion of LAION's own file gives the file the production manifest pins. LAION's
    /// file is not in the repository (and no model hub is reachable in CI): run it with
    /// `ONGI_LAION_PTH=/path/to/sa_0_4_vit_b_32_linear.pth cargo test -p ongi-shared --lib
    /// model::manifest::convert -- --ignored`.
    #[test]
    #[ignore = "needs LAION's sa_0_4_vit_b_32_linear.pth (ONGI_LAION_PTH)"]
    fn laions_head_converts_to_the_pinned_file() {
        let path = PathBuf::from(std::env::var_os("ONGI_LAION_PTH").expect("ONGI_LAION_PTH names LAION's .pth"));
        let manifest = Manifest::production();
        let head = manifest.by_role("aesthetic-head").unwrap();
        let conversion = head.convert.as_ref().unwrap();
        let source = std::fs::read(&path).unwrap();
        assert_eq!(Some(source.len() as u64), conversion.source_bytes);
        assert_eq!(sha256_hex(&source), conversion.source_sha256);
        let bytes = convert(conversion.from, &path, &head.tensors).unwrap();
        println!("converted: {} bytes, sha256 {}", bytes.len(), sha256_hex(&bytes));
        assert_eq!(Some(bytes.len() as u64), head.bytes);
        assert_eq!(sha256_hex(&bytes), head.sha256);
        // LAION's values (read from the file with zipfile and struct, never unpickled).
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let bias = file.tensor("bias").unwrap();
        assert_eq!(bias.data(), 3.421_470_9_f32.to_le_bytes());
    }
}
