//! An interpolated Kneser-Ney character n-gram language model (Kneser & Ney 1995; the
//! interpolated form of Chen & Goodman 1998): the baseline a character-level recurrent
//! language model is measured against, over the same vocabulary ids.
//!
//! For the highest order `N`, with `c` the count of an n-gram in the training text,
//!
//! `P_N(w | h) = max(c(hw) − D_N, 0) / c(h·) + D_N · N1+(h•) / c(h·) · P_{N−1}(w | h')`,
//!
//! where `h'` is `h` without its first character, `c(h·)` the count of `h` followed by
//! anything and `N1+(h•)` the number of distinct characters seen after `h`. Lower orders
//! replace counts by continuation counts `N1+(•g)`, the number of distinct characters seen
//! before `g` (a character that follows many contexts is a likely continuation of an unseen
//! one), and order 1 interpolates with the uniform distribution over the vocabulary, so no
//! id has probability 0. A context never seen backs off entirely to the next order. The
//! discounts are `D_n = n1 / (n1 + 2 n2)` from the counts of counts at each order. Written
//! here because no Rust crate offers it; it is counting.

use std::collections::HashMap;

/// An n-gram of ids as a key: a leading 1 bit, then 12 bits per id (ids < 4096).
type Key = u64;

const BITS: u32 = 12;

fn key(ids: &[u32]) -> Key {
    ids.iter().fold(1u64, |k, &id| (k << BITS) | id as u64)
}

/// Counts of one order: per n-gram its (raw or continuation) count, per context the sum of
/// those counts and the number of distinct followers.
#[derive(Debug, Clone, Default)]
struct Order {
    counts: HashMap<Key, u32>,
    contexts: HashMap<Key, (u64, u32)>,
    discount: f64,
}

/// Interpolated Kneser-Ney over ids `0..vocab`.
#[derive(Debug, Clone)]
pub struct KneserNey {
    order: usize,
    vocab: usize,
    /// `orders[n - 1]`: the n-grams of length `n`.
    orders: Vec<Order>,
}

impl KneserNey {
    /// Counts the n-grams, n = 1..=`order` (at most 5), of `text` (ids below `vocab`, at most
    /// 4096).
    pub fn fit(text: &[u32], order: usize, vocab: usize) -> KneserNey {
        let order = order.clamp(1, 5);
        assert!(vocab <= 1 << BITS, "ids must fit in {BITS} bits");
        // Raw counts of the highest order; continuation counts below it.
        let mut by_order: Vec<HashMap<Key, u32>> = vec![HashMap::new(); order];
        for g in text.windows(order) {
            *by_order[order - 1].entry(key(g)).or_default() += 1;
        }
        // Every distinct (n+1)-gram adds 1 to the continuation count of its n-suffix.
        let mut distinct: Vec<HashMap<Key, ()>> = vec![HashMap::new(); order];
        for i in 0..text.len() {
            for n in 1..=order.min(text.len() - i) {
                distinct[n - 1].insert(key(&text[i..i + n]), ());
            }
        }
        for n in (1..order).rev() {
            let mut cont: HashMap<Key, u32> = HashMap::new();
            for &k in distinct[n].keys() {
                *cont.entry(drop_first(k, n + 1)).or_default() += 1;
            }
            by_order[n - 1] = cont;
        }
        let orders = by_order
            .into_iter()
            .map(|counts| {
                let mut contexts: HashMap<Key, (u64, u32)> = HashMap::new();
                let (mut n1, mut n2) = (0u64, 0u64);
                for (&k, &c) in &counts {
                    let e = contexts.entry(drop_last(k)).or_default();
                    e.0 += c as u64;
                    e.1 += 1;
                    n1 += u64::from(c == 1);
                    n2 += u64::from(c == 2);
                }
                let discount = if n1 + n2 == 0 {
                    0.5
                } else {
                    (n1 as f64 / (n1 as f64 + 2.0 * n2 as f64)).clamp(0.05, 0.95)
                };
                Order {
                    counts,
                    contexts,
                    discount,
                }
            })
            .collect();
        KneserNey {
            order,
            vocab,
            orders,
        }
    }

    /// The model's order (n).
    pub fn order(&self) -> usize {
        self.order
    }

    /// `P(w | history)`, using at most the last `order − 1` ids of `history`.
    pub fn prob(&self, history: &[u32], w: u32) -> f64 {
        let h = &history[history.len().saturating_sub(self.order - 1)..];
        let mut p = 1.0 / self.vocab as f64;
        // From order 1 up to the longest context available.
        for n in 1..=h.len() + 1 {
            let ctx = &h[h.len() + 1 - n..];
            let o = &self.orders[n - 1];
            let Some(&(total, followers)) = o.contexts.get(&key(ctx)) else {
                // Context never seen at this order: keep the lower order's estimate.
                continue;
            };
            let mut g = ctx.to_vec();
            g.push(w);
            let c = o.counts.get(&key(&g)).copied().unwrap_or(0) as f64;
            let total = total as f64;
            p = (c - o.discount).max(0.0) / total + o.discount * followers as f64 / total * p;
        }
        p
    }

    /// Bits per character of `text` (ids), each id predicted from the ids before it.
    pub fn bits_per_char(&self, text: &[u32]) -> f64 {
        let mut bits = 0.0;
        for i in 0..text.len() {
            bits -= self.prob(&text[..i], text[i]).log2();
        }
        bits / text.len().max(1) as f64
    }
}

#[cfg(test)]
fn key_len(k: Key) -> usize {
    ((63 - k.leading_zeros()) / BITS) as usize
}

/// The key of the n-gram `k` (of length `n`) without its first id.
fn drop_first(k: Key, n: usize) -> Key {
    let body = k & ((1u64 << (BITS as usize * (n - 1))) - 1);
    body | (1u64 << (BITS as usize * (n - 1)))
}

/// The key of the n-gram `k` without its last id.
fn drop_last(k: Key) -> Key {
    k >> BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_ids_at_either_end() {
        let k = key(&[3, 4, 5]);
        assert_eq!(key_len(k), 3);
        assert_eq!(drop_first(k, 3), key(&[4, 5]));
        assert_eq!(drop_last(k), key(&[3, 4]));
        assert_eq!(key_len(key(&[])), 0);
    }

    #[test]
    fn probabilities_sum_to_one_in_every_context() {
        let text: Vec<u32> = "the cat sat on the mat; the rat ate the hat"
            .bytes()
            .map(|b| (b % 16) as u32)
            .collect();
        let lm = KneserNey::fit(&text, 4, 16);
        for history in [
            &text[..0],
            &text[..1],
            &text[..7],
            &text[..20],
            &[15, 15, 15][..],
        ] {
            let s: f64 = (0..16).map(|w| lm.prob(history, w)).sum();
            assert!((s - 1.0).abs() < 1e-9, "{s} after {history:?}");
        }
        // The text is better predicted than noise.
        let noise: Vec<u32> = (0..40).map(|i| (i * 7 % 16) as u32).collect();
        assert!(lm.bits_per_char(&text) < lm.bits_per_char(&noise));
        assert!(lm.bits_per_char(&text) < 4.0);
    }
}
