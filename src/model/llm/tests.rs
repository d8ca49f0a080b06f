use super::*;
use crate::llm::tiny::{self, TinyLlama};

const SUITE: &str = r#"
[suite]
name = "t"
[[models]]
name = "tiny"
arch = "llm"
path = "tiny.gguf"
[[targets]]
device = "cpu"
[scenarios.prefill]
prompt_tokens = [8]
"#;

fn parse(dir: &Path, text: &str) -> Result<crate::suite::Suite, String> {
    let path = dir.join("suite.toml");
    std::fs::write(&path, text).unwrap();
    crate::suite::parse(&path, text).map_err(|e| e.to_string())
}

#[test]
fn validation_reads_the_gguf_header() {
    let dir = tempfile::tempdir().unwrap();
    TinyLlama {
        tied: true,
        ..TinyLlama::default()
    }
    .write(&dir.path().join("tiny.gguf"))
    .unwrap();
    let suite = parse(dir.path(), SUITE).unwrap();
    let Architecture::Llm(llm) = &suite.models[0].arch else {
        panic!("an llm: {:?}", suite.models[0].arch)
    };
    assert_eq!(llm.architecture, "llama");
    assert_eq!((llm.layers, llm.heads, llm.kv_heads), (2, tiny::HEADS, tiny::KV_HEADS));
    assert_eq!(llm.vocab_size, tiny::vocab_size());
    assert_eq!(llm.context_length, 256);
    assert!(llm.tied_embeddings);
    assert_eq!(llm.capability(), Capability::Generation);
}

#[test]
fn unusable_files_and_fields_are_problems_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.gguf"), b"GGUF but nothing after").unwrap();
    let err = parse(dir.path(), SUITE).unwrap_err();
    assert!(err.contains("models[0].path") && err.contains("tiny.gguf"), "{err}");

    TinyLlama::default().write(&dir.path().join("tiny.gguf")).unwrap();
    let err = parse(dir.path(), &SUITE.replace("path = \"tiny.gguf\"", "")).unwrap_err();
    assert!(err.contains("needs `path`"), "{err}");
    let err = parse(dir.path(), &SUITE.replace("prompt_tokens = [8]", "prompt_tokens = [300]"))
        .unwrap_err();
    assert!(err.contains("context"), "{err}");
    let with_quality = SUITE.replace(
        "path = \"tiny.gguf\"",
        "path = \"tiny.gguf\"\nquality = { tokens = \"absent.npy\" }",
    );
    let err = parse(dir.path(), &with_quality).unwrap_err();
    assert!(err.contains("models[0].quality.tokens") && err.contains("absent.npy"), "{err}");
}
