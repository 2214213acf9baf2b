//! The crate's sentence encoder against the reference implementation:
//! vectors that sentence-transformers computed for all-MiniLM-L6-v2
//! (`tests/data/minilm_reference.json`, made by
//! `scripts/encoder_reference.py`).
//!
//! This test needs the model: `scripts/fetch_minilm.sh` puts it under
//! `models/` (or set `TWOSTAGE_MODEL_DIR`). Without it the test fails, on
//! purpose: CI fetches the model and runs the comparison for real.

mod common;

use std::path::Path;

use common::encoder;
use twostage::encoder::Arithmetic;
use twostage::Encoder;

#[derive(serde::Deserialize)]
struct Reference {
    max_seq_length: usize,
    sentences: Vec<Sentence>,
}

#[derive(serde::Deserialize)]
struct Sentence {
    text: String,
    tokens: usize,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm_reference.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Both arithmetics against the reference: every text within cosine 0.999,
/// and on average within 0.9999 (bf16) or 0.999999 (f32). The bf16 path runs
/// only where the CPU has AVX-512 BF16 (elsewhere `load` gives f32 too).
#[test]
fn embeddings_match_sentence_transformers() {
    let dir = twostage::encoder::default_model_dir(env!("CARGO_MANIFEST_DIR"));
    let f32_encoder = Encoder::load_f32(&dir).unwrap();
    assert_eq!(f32_encoder.arithmetic(), Arithmetic::F32);
    for enc in [encoder(), f32_encoder] {
        let (mean, worst) = compare(&enc);
        eprintln!(
            "{:?}: mean cosine {mean:.8}, lowest {:.8} for {:?}",
            enc.arithmetic(),
            worst.0,
            worst.1
        );
        let floor = match enc.arithmetic() {
            Arithmetic::Bf16 => 0.9999,
            Arithmetic::F32 => 0.999999,
        };
        assert!(mean >= floor, "{:?}: mean cosine {mean} below {floor}", enc.arithmetic());
    }
}

/// Mean cosine to the reference over the texts and both paths (one text
/// alone, all in a batch), and the lowest with its text.
fn compare(enc: &Encoder) -> (f64, (f64, String)) {
    let reference = reference();
    assert!(reference.sentences.len() >= 24, "a few dozen reference sentences");
    assert_eq!(enc.dim(), 384);
    assert_eq!(enc.info().max_tokens, reference.max_seq_length);
    // Texts over the limit must be in the reference, or truncation goes untested.
    assert!(reference.sentences.iter().any(|s| s.tokens == reference.max_seq_length));
    assert!(reference
        .sentences
        .iter()
        .any(|s| s.tokens > 128 && s.tokens < reference.max_seq_length));

    let texts: Vec<&str> = reference.sentences.iter().map(|s| s.text.as_str()).collect();
    let batch = enc.encode_batch(&texts, &|_| {}).unwrap();
    let mut worst = (1.0f64, String::new());
    let (mut total, mut count) = (0.0, 0);
    for (s, b) in reference.sentences.iter().zip(&batch) {
        assert_eq!(enc.token_count(&s.text).unwrap(), s.tokens, "token count of {:?}", s.text);
        let single = enc.encode(&s.text).unwrap();
        let norm: f64 = single.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
        for (path, v) in [("single", &single), ("batch", b)] {
            let c = cosine(v, &s.embedding);
            assert!(c >= 0.999, "{:?} {path} cosine {c} for {:?}", enc.arithmetic(), s.text);
            total += c;
            count += 1;
            if c < worst.0 {
                worst = (c, s.text.clone());
            }
        }
    }
    (total / count as f64, worst)
}

/// The bf16 path concatenates a batch's texts without padding: each text's
/// rows go through the same products in the same order as when it is alone,
/// so a batch of mixed lengths gives bit-identical vectors. The `f32` path
/// pads, and agrees to rounding.
#[test]
fn a_batch_gives_each_text_the_vector_it_gets_alone() {
    let dir = twostage::encoder::default_model_dir(env!("CARGO_MANIFEST_DIR"));
    let long = "a long text about the history of recorded sound and its machines ".repeat(40);
    let texts = ["x", long.as_str(), "two words", "", "the quick brown fox jumps over the lazy dog"];
    for enc in [encoder(), Encoder::load_f32(&dir).unwrap()] {
        let batch = enc.encode_batch(&texts, &|_| {}).unwrap();
        assert_eq!(batch.len(), texts.len());
        for (text, v) in texts.iter().zip(&batch) {
            let alone = enc.encode(text).unwrap();
            match enc.arithmetic() {
                Arithmetic::Bf16 => assert_eq!(&alone, v, "{text:?}"),
                Arithmetic::F32 => assert!(cosine(&alone, v) > 0.999999, "{text:?}"),
            }
        }
    }
}
