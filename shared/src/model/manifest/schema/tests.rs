//! Tests of `schema.rs`: the production and fixture manifests, and the one-line errors of bad ones.
//! Kept apart so `schema.rs` holds only the manifest types and their parsing.

use super::super::test_support::{assert_one_line, fixtures, listing, sha256_hex};
use super::*;

#[test]
fn production_manifest_lists_every_production_file_with_its_contract() {
    let m = Manifest::production();
    assert_eq!(m.origin(), PRODUCTION_ORIGIN);
    let files: Vec<&str> = m.models().iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "clip-vit-b32-visual.onnx",
            "clip-vit-b32-textual.onnx",
            "aesthetic-vit-b32-linear.safetensors",
            "face-detect-yunet.onnx",
            "face-detect-mtcnn-pnet.onnx",
            "face-detect-mtcnn-rnet.onnx",
            "face-detect-mtcnn-onet.onnx",
            "face-embed-sface.onnx",
            "sd15/unet.safetensors",
            "sd15/vae.safetensors",
            "sd15/text_encoder.safetensors",
        ]
    );
    let visual = m.by_role("clip-visual").unwrap();
    assert_eq!(visual.inputs[0].to_string(), "pixel_values f32 [N,3,224,224]");
    assert_eq!(visual.outputs[0].to_string(), "image_embeds f32 [N,512]");
    let textual = m.by_role("clip-textual").unwrap();
    assert_eq!(textual.inputs[0].to_string(), "input_ids i64 [N,77]");
    assert_eq!(textual.outputs[0].to_string(), "text_embeds f32 [N,512]");
    let head = m.by_role("aesthetic-head").unwrap();
    let tensors: Vec<String> = head.tensors.iter().map(ToString::to_string).collect();
    assert_eq!(tensors, ["weight f32 [1,512]", "bias f32 [1]"]);
    assert_eq!(
        m.by_role("face-embed-sface").unwrap().outputs[0].to_string(),
        "fc1 f32 [1,128]"
    );

    for e in m.models() {
        assert!(!e.licence.is_empty(), "{}", e.file);
        // A pinned file has its size pinned too; an unpinned one says how to obtain it.
        assert_eq!(e.is_pinned(), e.bytes.is_some(), "{}", e.file);
        if !e.is_pinned() || e.source.is_empty() {
            assert!(e.note.is_some(), "{} needs a note", e.file);
        }
        if !e.source.is_empty() {
            assert!(e.source.starts_with("https://"), "{}", e.source);
        }
    }
    // Every required file can be checked and fetched: `verify` (run by every image build)
    // fails on a required file it cannot check.
    for e in m.models().iter().filter(|e| e.required) {
        assert!(
            e.is_pinned() && !e.source.is_empty(),
            "{} is required: pin it and give its source",
            e.file
        );
    }
    // The aesthetic head is LAION's .pth at a fixed commit, converted by `fetch` and pinned
    // before and after the conversion.
    assert!(head.required && head.is_pinned());
    assert_eq!(head.bytes, Some(2188));
    assert_eq!(
        head.source,
        "https://github.com/LAION-AI/aesthetic-predictor/raw/6d122adad522ab246644d9dc1c6d7a3810ee255f/sa_0_4_vit_b_32_linear.pth"
    );
    assert_eq!(head.source_name().as_deref(), Some("sa_0_4_vit_b_32_linear.pth"));
    assert_eq!(
        head.convert,
        Some(Conversion {
            from: ConvertFrom::PytorchStateDict,
            source_sha256: "c7b14cead230694acc7b9447974d3cad78003c72da032e402a303b6c2429e85f".to_owned(),
            source_bytes: Some(3047),
        })
    );
    assert!(
        m.models()
            .iter()
            .filter(|e| e.role != "aesthetic-head")
            .all(|e| e.convert.is_none())
    );
    assert_eq!(visual.source_host().as_deref(), Some("huggingface.co"));
}

#[test]
fn production_manifest_pins_the_gpu_workers_stable_diffusion_files_for_the_gpu_job_only() {
    let m = Manifest::production();
    let revision = "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/\
                    451f4fe16113bff5a5d2269ed5ad43b0592e9a14/";
    let expected = [
        (
            "sd15/unet.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            1719125304,
            "c83908253f9a64d08c25fc90874c9c8aef9a329ce1ca5fb909d73b0c83d1ea21",
        ),
        (
            "sd15/vae.safetensors",
            "vae/diffusion_pytorch_model.fp16.safetensors",
            167335342,
            "4fbcf0ebe55a0984f5a5e00d8c4521d52359af7229bb4d81890039d2aa16dd7c",
        ),
        (
            "sd15/text_encoder.safetensors",
            "text_encoder/model.fp16.safetensors",
            246144864,
            "77795e2023adcf39bc29a884661950380bd093cf0750a966d473d1718dc9ef4e",
        ),
    ];
    let gpu_job = m.only_used_by(UsedBy::GpuJob);
    let files: Vec<&str> = gpu_job.models().iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, expected.map(|(file, ..)| file));
    for (file, path, bytes, sha256) in expected {
        let e = gpu_job.models().iter().find(|e| e.file == file).unwrap();
        assert_eq!(e.used_by, UsedBy::GpuJob);
        assert_eq!(e.source, format!("{revision}{path}"), "{file}");
        assert_eq!(e.bytes, Some(bytes), "{file}");
        assert_eq!(e.sha256, sha256, "{file}");
        assert_eq!(e.licence, "CreativeML-OpenRAIL-M", "{file}");
        assert!(e.required, "{file}");
        // Where the GPU worker reads them (gpu-job/src/diffusion/weights.rs, in sd15/).
        assert_eq!(e.path_in(Path::new("/m")), Path::new("/m/sd15").join(&file[5..]));
    }
    // Every other file is the functions', which the commands take by default.
    let functions = m.only_used_by(UsedBy::Functions);
    assert_eq!(functions.models().len() + 3, m.models().len());
    assert!(functions.models().iter().all(|e| !e.file.contains('/')));
    assert_eq!(functions.as_toml(), m.as_toml(), "a selection keeps the whole text");
}

#[test]
fn fixture_manifest_lists_exactly_the_model_files_of_the_fixture_folder() {
    let m = Manifest::load(&fixtures()).unwrap();
    assert!(m.origin().ends_with("manifest.toml"), "{}", m.origin());
    let mut listed: Vec<String> = m.models().iter().map(|e| e.file.clone()).collect();
    listed.sort();
    let on_disk: Vec<String> = listing(&fixtures())
        .into_iter()
        .filter(|n| n.ends_with(".onnx") || n.ends_with(".safetensors"))
        .collect();
    assert_eq!(
        listed, on_disk,
        "add every model file of the fixture folder to its manifest.toml"
    );
    for e in m.models() {
        assert!(e.source.is_empty() && e.is_pinned() && e.bytes.is_some(), "{}", e.file);
    }
}

#[test]
fn malformed_or_invalid_manifests_are_one_line_errors_naming_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MANIFEST_FILE);
    std::fs::write(&path, "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"\"\n").unwrap();
    let e = Manifest::load(dir.path()).unwrap_err();
    let message = e.to_string();
    assert_one_line(&message);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("licence"), "{message}");

    std::fs::write(&path, "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"\"\nlicence = \"MIT\"\nsource = \"\"\nrequired = true\nweights = 1\n").unwrap();
    let message = Manifest::load(dir.path()).unwrap_err().to_string();
    assert_one_line(&message);
    assert!(message.contains("line 8") && message.contains("weights"), "{message}");

    std::fs::write(&path, "this is not toml").unwrap();
    let message = Manifest::load(dir.path()).unwrap_err().to_string();
    assert_one_line(&message);
    assert!(message.contains("line 1"), "{message}");

    let entry = |file: &str, sha256: &str, source: &str| {
        format!(
            "[[model]]\nrole = \"{file}\"\nfile = \"{file}\"\nsha256 = \"{sha256}\"\nlicence = \"MIT\"\nsource = \"{source}\"\nrequired = true\n"
        )
    };
    let pinned = sha256_hex(b"x");
    let converted = |convert: &str, tensors: &str| {
        format!(
            "{}used_by = \"functions\"\n\n[model.convert]\n{convert}\n{tensors}",
            entry("h.safetensors", "", "https://example.org/h.pth")
        )
    };
    let weight = "\n[[model.tensors]]\nname = \"weight\"\ndtype = \"f32\"\nshape = [1, 512]\n";
    let source_pins = format!("source_sha256 = \"{pinned}\"\nsource_bytes = 3");
    let cases = [
        ("".to_owned(), "lists no [[model]]"),
        (entry("../evil.onnx", "", ""), "plain file name"),
        (entry("../x", "", ""), "plain file name"),
        (entry("a/b/c", "", ""), "plain file name"),
        (entry("/x", "", ""), "plain file name"),
        (entry("sd15/", "", ""), "plain file name"),
        (entry("sd15//x", "", ""), "plain file name"),
        (entry("sd15/../x", "", ""), "plain file name"),
        (entry("sd15/.x", "", ""), "plain file name"),
        (entry(".sd15/x", "", ""), "plain file name"),
        (entry("sd15\\\\x", "", ""), "plain file name"),
        (entry(".hidden", "", ""), "plain file name"),
        (entry("manifest.toml", "", ""), "plain file name"),
        (
            format!("{}{}", entry("sd15", "", ""), entry("sd15/a.onnx", "", "")),
            "sd15/a.onnx is inside sd15, which the manifest lists as a file",
        ),
        (
            format!("{}used_by = \"laptop\"\n", entry("a.onnx", "", "")),
            "unknown variant `laptop`",
        ),
        (
            converted("from = \"pytorch-state-dict\"\nsource_bytes = 3", weight),
            "needs source_sha256 and source_bytes",
        ),
        (
            converted(
                &format!("from = \"pytorch-state-dict\"\nsource_sha256 = \"{pinned}\""),
                weight,
            ),
            "needs source_sha256 and source_bytes",
        ),
        (
            converted(
                "from = \"pytorch-state-dict\"\nsource_sha256 = \"ABC\"\nsource_bytes = 3",
                weight,
            ),
            "source_sha256 must be 64 lowercase hex",
        ),
        (
            converted(&format!("from = \"pickle\"\n{source_pins}"), weight),
            "unknown variant `pickle`",
        ),
        (
            converted(&format!("from = \"pytorch-state-dict\"\n{source_pins}"), ""),
            "needs the [[model.tensors]] it writes",
        ),
        (
            converted(
                &format!("from = \"pytorch-state-dict\"\n{source_pins}"),
                &weight.replace("[1, 512]", "[\"N\", 512]"),
            ),
            "writes f32 tensors of fixed shape only, got weight f32 [N,512]",
        ),
        (entry("a.onnx", "ABC", ""), "64 lowercase hex"),
        (entry("a.onnx", &pinned.to_uppercase(), ""), "64 lowercase hex"),
        (entry("a.onnx", "", "ftp://example.org/a"), "http(s) URL"),
        (entry("a.onnx", "", "not a url"), "http(s) URL"),
        (
            format!("{}{}", entry("a.onnx", "", ""), entry("a.onnx", "", "")),
            "listed twice",
        ),
    ];
    for (text, expected) in cases {
        let message = Manifest::from_toml_str(&text).unwrap_err().to_string();
        assert_one_line(&message);
        assert!(message.contains(expected), "{message} (expected {expected:?})");
    }
    assert!(Manifest::from_toml_str(&entry("a.onnx", &pinned, "https://example.org/a.onnx")).is_ok());
    let nested = Manifest::from_toml_str(&format!(
        "{}used_by = \"gpu-job\"\n",
        entry("sd15/unet.safetensors", &pinned, "https://example.org/u")
    ))
    .unwrap();
    assert_eq!(nested.models()[0].used_by, UsedBy::GpuJob);
    let head = Manifest::from_toml_str(&converted(
        &format!("from = \"pytorch-state-dict\"\n{source_pins}"),
        weight,
    ))
    .unwrap();
    assert_eq!(head.models()[0].used_by, UsedBy::Functions);
    assert_eq!(
        head.models()[0].convert.as_ref().map(|c| (c.from, c.source_bytes)),
        Some((ConvertFrom::PytorchStateDict, Some(3)))
    );
    // Without `used_by`, a file is the functions'.
    let plain = Manifest::from_toml_str(&entry("a.onnx", "", "")).unwrap();
    assert_eq!(plain.models()[0].used_by, UsedBy::Functions);
    assert!(plain.only_used_by(UsedBy::GpuJob).models().is_empty());
}
