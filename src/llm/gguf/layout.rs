//! The tensors each architecture's candle loader reads (candle-transformers 0.11's
//! `quantized_llama`, `quantized_qwen2`, `quantized_qwen3`, `quantized_phi3`), so that a file
//! lacking one is refused at inspection, naming the tensor, instead of failing inside a
//! worker when its case loads the model.

use candle_core::quantized::gguf_file::Content;

/// The first tensor `arch`'s loader reads that `ct` lacks, with the reason it is read; `None`
/// when every one is there.
pub fn missing_tensor(arch: &str, layers: usize, ct: &Content) -> Option<(String, String)> {
    let has = |name: &str| ct.tensor_infos.contains_key(name);
    for name in ["token_embd.weight", "output_norm.weight"] {
        if !has(name) {
            return Some((name.to_string(), format!("candle's {arch} loader reads it")));
        }
    }
    // llama, qwen2 and qwen3 reuse the token table when `output.weight` is absent; candle's
    // phi3 does not.
    if arch == "phi3" && !has("output.weight") {
        let why = "candle's phi3 loader reads it (it does not tie the output to the token table)";
        return Some(("output.weight".to_string(), why.to_string()));
    }
    let experts = match ct.metadata.get("llama.expert_count") {
        Some(v) if arch == "llama" => v.to_u32().unwrap_or(0) as usize,
        _ => 0,
    };
    for layer in 0..layers {
        for suffix in layer_tensors(arch, experts) {
            let name = format!("blk.{layer}.{suffix}");
            if !has(&name) {
                let why =
                    format!("candle's {arch} loader reads it ({arch}.block_count = {layers})");
                return Some((name, why));
            }
        }
    }
    None
}

/// The tensors of one block, without the `blk.N.` prefix, in the order they are checked.
fn layer_tensors(arch: &str, experts: usize) -> Vec<String> {
    let mut names: Vec<&str> = vec!["attn_norm.weight", "ffn_norm.weight"];
    if arch == "phi3" {
        // q, k and v fused; gate and up fused.
        names.extend(["attn_qkv.weight", "ffn_up.weight"]);
    } else {
        names.extend(["attn_q.weight", "attn_k.weight", "attn_v.weight"]);
    }
    names.extend(["attn_output.weight", "ffn_down.weight"]);
    match arch {
        "qwen2" => names.extend(["attn_q.bias", "attn_k.bias", "attn_v.bias"]),
        "qwen3" => names.extend(["attn_q_norm.weight", "attn_k_norm.weight"]),
        _ => {}
    }
    let mut names: Vec<String> = names.into_iter().map(String::from).collect();
    if arch == "phi3" {
        return names;
    }
    if experts > 1 {
        // llama's mixture of experts: a router, then gate, down and up per expert.
        names.push("ffn_gate_inp.weight".into());
        for i in 0..experts {
            for part in ["ffn_gate", "ffn_down", "ffn_up"] {
                names.push(format!("{part}.{i}.weight"));
            }
        }
        names.retain(|n| n != "ffn_down.weight");
    } else {
        names.extend(["ffn_gate.weight".into(), "ffn_up.weight".into()]);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_architecture_reads_its_own_block_tensors() {
        let phi3 = layer_tensors("phi3", 0);
        assert!(phi3.contains(&"attn_qkv.weight".to_string()));
        assert!(!phi3
            .iter()
            .any(|n| n == "attn_q.weight" || n == "ffn_gate.weight"));
        let qwen2 = layer_tensors("qwen2", 0);
        assert!(qwen2.contains(&"attn_v.bias".to_string()));
        assert!(layer_tensors("qwen3", 0).contains(&"attn_k_norm.weight".to_string()));
        let moe = layer_tensors("llama", 2);
        assert!(moe.contains(&"ffn_up.1.weight".to_string()));
        assert!(!moe
            .iter()
            .any(|n| n == "ffn_down.weight" || n == "ffn_up.weight"));
        assert_eq!(layer_tensors("llama", 0).len(), 9);
    }
}
