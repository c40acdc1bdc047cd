//! The rules a parsed manifest must meet beyond its TOML shape (file names, pins, sources,
//! conversions, duplicates). Apart from `schema.rs`, which keeps the types and the parsing.

use super::{Conversion, ConvertFrom, DType, Dim, MANIFEST_FILE, ModelEntry, TensorSpec};

pub(super) fn validate(models: &[ModelEntry]) -> Result<(), String> {
    if models.is_empty() {
        return Err("it lists no [[model]]".to_owned());
    }
    for (i, m) in models.iter().enumerate() {
        let which = if m.file.is_empty() {
            format!("model #{}", i + 1)
        } else {
            m.file.clone()
        };
        if !is_model_path(&m.file) {
            return Err(format!(
                "{which}: file must be a plain file name inside the model folder, or one folder and a plain file \
                 name (sd15/unet.safetensors), got {:?}",
                m.file
            ));
        }
        if m.role.trim().is_empty() {
            return Err(format!("{which}: role is empty"));
        }
        if m.licence.trim().is_empty() {
            return Err(format!("{which}: licence is empty"));
        }
        if !m.sha256.is_empty() && !is_sha256_hex(&m.sha256) {
            return Err(format!(
                "{which}: sha256 must be 64 lowercase hex digits, or \"\" while unpinned, got {:?}",
                m.sha256
            ));
        }
        if m.bytes == Some(0) {
            return Err(format!("{which}: bytes must be positive (leave it out while unknown)"));
        }
        if !m.source.is_empty() {
            let ok = reqwest::Url::parse(&m.source)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
            if !ok {
                return Err(format!(
                    "{which}: source must be an http(s) URL, or \"\" when installed by hand, got {:?}",
                    m.source
                ));
            }
        }
        if let Some(convert) = &m.convert {
            validate_conversion(&which, convert, &m.tensors)?;
        }
        if models[..i].iter().any(|other| other.file == m.file) {
            return Err(format!("{which} is listed twice"));
        }
        // A file cannot also be the folder of another one.
        if let Some(other) = models.iter().find(|other| {
            let (a, b) = (&m.file, &other.file);
            a.strip_prefix(b.as_str()).is_some_and(|rest| rest.starts_with('/'))
        }) {
            return Err(format!(
                "{which} is inside {}, which the manifest lists as a file",
                other.file
            ));
        }
        if models[..i].iter().any(|other| other.role == m.role) {
            return Err(format!("{which}: role {:?} is listed twice", m.role));
        }
    }
    Ok(())
}

/// The pins of the download and the tensors it is converted into: what `fetch` needs to
/// check a converted file before and after the conversion.
fn validate_conversion(which: &str, convert: &Conversion, tensors: &[TensorSpec]) -> Result<(), String> {
    let from = convert.from;
    if convert.source_sha256.is_empty() || convert.source_bytes.is_none() {
        return Err(format!(
            "{which}: [model.convert] needs source_sha256 and source_bytes, the pins of the downloaded file"
        ));
    }
    if !is_sha256_hex(&convert.source_sha256) {
        return Err(format!(
            "{which}: [model.convert] source_sha256 must be 64 lowercase hex digits, got {:?}",
            convert.source_sha256
        ));
    }
    if convert.source_bytes == Some(0) {
        return Err(format!("{which}: [model.convert] source_bytes must be positive"));
    }
    match from {
        ConvertFrom::PytorchStateDict => {
            if tensors.is_empty() {
                return Err(format!(
                    "{which}: [model.convert] from = \"{from}\" needs the [[model.tensors]] it writes"
                ));
            }
            let fixed = |spec: &TensorSpec| spec.shape.iter().all(|d| matches!(d, Dim::Fixed(_)));
            if let Some(spec) = tensors.iter().find(|t| t.dtype != DType::F32 || !fixed(t)) {
                return Err(format!(
                    "{which}: [model.convert] from = \"{from}\" writes f32 tensors of fixed shape only, got {spec}"
                ));
            }
        }
    }
    Ok(())
}

/// A file name, or one folder and a file name (`sd15/unet.safetensors`): no absolute path,
/// no `..`, no hidden part, nothing deeper, so a manifest can only name files inside the folder.
fn is_model_path(file: &str) -> bool {
    let parts: Vec<&str> = file.split('/').collect();
    file != MANIFEST_FILE && parts.len() <= 2 && parts.iter().all(|part| is_plain_file_name(part))
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
