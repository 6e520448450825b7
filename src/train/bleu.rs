//! Corpus BLEU (Papineni et al. 2002) with several references per hypothesis, as sacrebleu
//! computes it with `tokenize="none"` and `smooth_method="none"` (checked against a fixture
//! from scripts/make_bleu_fixture.py).
//!
//! For n-gram orders 1..N: `p_n = Σ_h Σ_g min(count_h(g), max_r count_r(g)) / Σ_h Σ_g
//! count_h(g)` (each hypothesis n-gram clipped by its largest count in any one reference);
//! `BLEU-N = BP · exp(Σ_{n ≤ N} log p_n / N)`, with the brevity penalty `BP = 1` when the
//! hypotheses' total length `c` exceeds the references' `r`, else `exp(1 − r/c)`; `r` sums,
//! per hypothesis, the reference length closest to the hypothesis's (the shorter on a tie).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// BLEU-1 to BLEU-4 of a corpus, with the figures behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// `BLEU-n` for n = 1..4, in [0, 1].
    pub bleu: [f64; 4],
    /// Modified n-gram precisions `p_1..p_4`.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub brevity_penalty: f64,
    /// Total hypothesis length.
    pub hypothesis_length: usize,
    /// Total effective reference length.
    pub reference_length: usize,
}

fn ngrams<'a>(words: &'a [&'a str], n: usize) -> HashMap<&'a [&'a str], usize> {
    let mut m = HashMap::new();
    if words.len() >= n {
        for w in words.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Corpus BLEU of `hypotheses` (whitespace-tokenised) against `references[i]`, the
/// references of hypothesis `i` (at least one each).
pub fn corpus_bleu(hypotheses: &[String], references: &[Vec<String>]) -> Bleu {
    let mut matched = [0usize; 4];
    let mut total = [0usize; 4];
    let (mut c, mut r) = (0usize, 0usize);
    for (h, refs) in hypotheses.iter().zip(references) {
        let hw: Vec<&str> = h.split_whitespace().collect();
        let rws: Vec<Vec<&str>> = refs
            .iter()
            .map(|x| x.split_whitespace().collect())
            .collect();
        c += hw.len();
        r += rws
            .iter()
            .map(|x| x.len())
            .min_by_key(|&l| (l.abs_diff(hw.len()), l))
            .unwrap_or(0);
        for n in 1..=4 {
            let mut max_ref: HashMap<&[&str], usize> = HashMap::new();
            for rw in &rws {
                for (g, k) in ngrams(rw, n) {
                    let e = max_ref.entry(g).or_insert(0);
                    *e = (*e).max(k);
                }
            }
            for (g, k) in ngrams(&hw, n) {
                matched[n - 1] += k.min(max_ref.get(g).copied().unwrap_or(0));
                total[n - 1] += k;
            }
        }
    }
    let precisions = std::array::from_fn(|i| {
        if total[i] == 0 {
            0.0
        } else {
            matched[i] as f64 / total[i] as f64
        }
    });
    let brevity_penalty = if c == 0 {
        0.0
    } else if c > r {
        1.0
    } else {
        (1.0 - r as f64 / c as f64).exp()
    };
    let bleu = std::array::from_fn(|i| {
        let ps: &[f64] = &precisions[..=i];
        if ps.contains(&0.0) {
            0.0
        } else {
            brevity_penalty * (ps.iter().map(|p| p.ln()).sum::<f64>() / (i + 1) as f64).exp()
        }
    });
    Bleu {
        bleu,
        precisions,
        brevity_penalty,
        hypothesis_length: c,
        reference_length: r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn papineni_example_of_clipped_counts() {
        // "the the the the the the the" against "the cat is on the mat": p1 = 2/7.
        let b = corpus_bleu(
            &["the the the the the the the".into()],
            &[vec![
                "the cat is on the mat".into(),
                "there is a cat on the mat".into(),
            ]],
        );
        assert!((b.precisions[0] - 2.0 / 7.0).abs() < 1e-12);
        assert_eq!(b.bleu[1], 0.0);
    }

    #[test]
    fn a_perfect_corpus_scores_one_and_a_short_one_is_penalised() {
        let refs = vec![vec!["a bag above a sneaker".to_string()]];
        let b = corpus_bleu(&["a bag above a sneaker".into()], &refs);
        assert!(b.bleu.iter().all(|&x| (x - 1.0).abs() < 1e-12));
        let short = corpus_bleu(&["a bag above".into()], &refs);
        assert!((short.brevity_penalty - (1.0f64 - 5.0 / 3.0).exp()).abs() < 1e-12);
    }
}
