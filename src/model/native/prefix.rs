//! Shared prompt prefixes: which token prefixes several sequences of a call have in common, so
//! that a decoder computes each one's keys and values once (few-shot exemplars, a
//! multiple-choice doc's context shared by its choices).
//!
//! Why the results do not change: attention runs in query blocks of `ops::QUERY_BLOCK`
//! positions counted from position 0, and every other map works row by row. A sequence computed
//! as (prefix, then the rest on top of the prefix's keys and values) goes through exactly the
//! products of the sequence computed whole when each part computes the blocks it touches whole:
//! a part that starts inside a block gets zero queries for the block's earlier positions, and a
//! prefix that ends inside a block gets zero queries and keys after its end (hidden by the causal
//! mask, as the continuation's keys are in the whole pass). A matrix product's entries do not
//! depend on the other rows' values, so the real rows come out bit-identical. A sequence uses a
//! prefix that ends inside a block only if the sequence fills that block (else the whole pass's
//! block is shorter, another product). Its numbers are then bit-identical whether or not another
//! sequence shared the prefix (tests in mod.rs, tests/batch_independence.rs).

use std::collections::HashMap;

use super::decoder::Decoder;
use super::ops::QUERY_BLOCK;
use super::SeqCache;

/// Shorter common prefixes are computed with each sequence (not worth a pass of their own).
pub(crate) const MIN_SHARED: usize = 16;

/// A prefix shared by several sequences: the first `len` tokens of sequence `seq`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub seq: usize,
    pub len: usize,
    /// The longest shorter shared prefix it extends.
    pub parent: Option<usize>,
}

/// The shared prefixes of a set of sequences.
#[derive(Debug, Default)]
pub(crate) struct Prefixes {
    pub nodes: Vec<Node>,
    /// Per sequence: the longest shared prefix it starts from, if any.
    pub of_seq: Vec<Option<usize>>,
}

fn lcp(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Whether a sequence of `len` tokens may start from a prefix of `prefix` tokens: the prefix
/// ends on a block boundary, or the sequence fills the block the prefix ends in.
pub(crate) fn usable(prefix: usize, len: usize) -> bool {
    prefix.is_multiple_of(QUERY_BLOCK) || len >= prefix / QUERY_BLOCK * QUERY_BLOCK + QUERY_BLOCK
}

/// Hashes of every prefix of a sequence (`h[n]` of its first n tokens).
fn prefix_hashes(s: &[u32]) -> Vec<u64> {
    let mut h = Vec::with_capacity(s.len() + 1);
    let mut x = 0xcbf2_9ce4_8422_2325u64;
    h.push(x);
    for &t in s {
        x = (x ^ t as u64)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
        h.push(x);
    }
    h
}

impl Prefixes {
    /// Shared prefixes of `seqs`, where sequence i must compute at least its last `keep[i]`
    /// positions itself (the positions whose logits are read; at least one).
    pub(crate) fn find(seqs: &[&[u32]], keep: &[usize]) -> Prefixes {
        let cap = |i: usize| seqs[i].len().saturating_sub(keep[i].max(1));
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by(|&a, &b| seqs[a].cmp(seqs[b]));
        let hashes: Vec<Vec<u64>> = seqs.iter().map(|s| prefix_hashes(s)).collect();
        // any two sequences' common prefix is the shortest adjacent one between them in sorted
        // order, so the adjacent pairs name the prefixes worth sharing; each also at its last
        // block boundary, for sequences that do not fill the block it ends in
        let mut by_key: HashMap<(usize, u64), usize> = HashMap::new();
        let mut nodes: Vec<Node> = Vec::new();
        for w in order.windows(2) {
            let len = lcp(seqs[w[0]], seqs[w[1]]).min(cap(w[0])).min(cap(w[1]));
            for len in [len, len / QUERY_BLOCK * QUERY_BLOCK] {
                if len >= MIN_SHARED {
                    by_key.entry((len, hashes[w[0]][len])).or_insert_with(|| {
                        nodes.push(Node {
                            seq: w[0],
                            len,
                            parent: None,
                        });
                        nodes.len() - 1
                    });
                }
            }
        }
        let mut lengths: Vec<usize> = nodes.iter().map(|n| n.len).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        // the longest node of at most `most` tokens that `seq` starts with and may use
        let longest = |seq: usize, most: usize, whole: usize| {
            lengths
                .iter()
                .filter(|&&l| l <= most && usable(l, whole))
                .find_map(|&l| {
                    let n = *by_key.get(&(l, hashes[seq][l]))?;
                    let node = &nodes[n];
                    (seqs[node.seq][..l] == seqs[seq][..l]).then_some(n)
                })
        };
        // a prefix is computed in whole blocks, so any shorter one may be its parent
        let parents: Vec<Option<usize>> = nodes
            .iter()
            .map(|n| longest(n.seq, n.len - 1, usize::MAX))
            .collect();
        let of_seq = (0..seqs.len())
            .map(|i| longest(i, cap(i), seqs[i].len()))
            .collect();
        for (n, p) in nodes.iter_mut().zip(parents) {
            n.parent = p;
        }
        Prefixes { nodes, of_seq }
    }

    /// The node and its ancestors, root first.
    pub(crate) fn chain(&self, node: usize) -> Vec<usize> {
        let mut out = vec![node];
        while let Some(p) = self.nodes[*out.last().unwrap()].parent {
            out.push(p);
        }
        out.reverse();
        out
    }
}

/// What sharing saved over a call: prompt tokens in all, tokens computed, and the most bytes
/// of prefix keys and values held at once.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ShareStats {
    pub tokens: usize,
    pub computed: usize,
    pub peak_bytes: usize,
}

impl ShareStats {
    pub(crate) fn add(&mut self, other: ShareStats) {
        self.tokens += other.tokens;
        self.computed += other.computed;
        self.peak_bytes = self.peak_bytes.max(other.peak_bytes);
    }

    /// One line for the end of a run, when sharing saved anything.
    pub(crate) fn line(&self) -> Option<String> {
        (self.computed < self.tokens).then(|| {
            format!(
                "shared prefixes: computed {} of {} prompt tokens ({:.0}%); prefix cache peak {:.1} MiB (bound {} MiB)",
                self.computed,
                self.tokens,
                100.0 * self.computed as f64 / self.tokens.max(1) as f64,
                self.peak_bytes as f64 / (1 << 20) as f64,
                PREFIX_BYTES >> 20
            )
        })
    }
}

/// Most bytes of shared-prefix keys and values held at once.
pub(crate) const PREFIX_BYTES: usize = 1 << 30;

/// The keys and values of shared prefixes, computed when a sequence first needs them and
/// dropped after their last sequence; never more than `PREFIX_BYTES` held.
pub(crate) struct PrefixCaches<'a> {
    decoder: &'a Decoder,
    seqs: Vec<&'a [u32]>,
    prefixes: Prefixes,
    caches: Vec<Option<SeqCache>>,
    /// Per node: sequences still to use it (directly or through a longer prefix).
    users: Vec<usize>,
    /// Sequences that do not use their prefix (it did not fit the bound).
    unshared: Vec<bool>,
    held: usize,
    /// Most bytes held at once (`PREFIX_BYTES`).
    pub bound: usize,
    pub stats: ShareStats,
}

impl<'a> PrefixCaches<'a> {
    pub(crate) fn new(decoder: &'a Decoder, seqs: Vec<&'a [u32]>, keep: &[usize]) -> Self {
        let prefixes = Prefixes::find(&seqs, keep);
        let mut users = vec![0; prefixes.nodes.len()];
        for n in prefixes.of_seq.iter().flatten() {
            for a in prefixes.chain(*n) {
                users[a] += 1;
            }
        }
        PrefixCaches {
            decoder,
            caches: (0..prefixes.nodes.len()).map(|_| None).collect(),
            users,
            unshared: vec![false; seqs.len()],
            held: 0,
            bound: PREFIX_BYTES,
            stats: ShareStats {
                tokens: seqs.iter().map(|s| s.len()).sum(),
                ..Default::default()
            },
            seqs,
            prefixes,
        }
    }

    fn node_of(&self, seq: usize) -> Option<usize> {
        self.prefixes.of_seq[seq].filter(|_| !self.unshared[seq])
    }

    /// Positions of sequence `seq` that come from its shared prefix.
    pub(crate) fn skip(&self, seq: usize) -> usize {
        self.node_of(seq).map_or(0, |n| self.prefixes.nodes[n].len)
    }

    /// The keys and values of sequence `seq`'s prefix (after `prepare`).
    pub(crate) fn cache(&self, seq: usize) -> Option<&SeqCache> {
        self.node_of(seq).and_then(|n| self.caches[n].as_ref())
    }

    fn missing(&self, seq: usize) -> Vec<usize> {
        self.node_of(seq).map_or(Vec::new(), |n| {
            self.prefixes
                .chain(n)
                .into_iter()
                .filter(|&a| self.caches[a].is_none())
                .collect()
        })
    }

    /// Bytes that `seqs` (with `seq` last) would add to what is held.
    pub(crate) fn would_add(&self, seqs: &[usize]) -> usize {
        let mut nodes: Vec<usize> = seqs.iter().flat_map(|&s| self.missing(s)).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let per = self.decoder.kv_bytes_per_token();
        nodes
            .iter()
            .map(|&n| self.prefixes.nodes[n].len.next_multiple_of(QUERY_BLOCK) * per)
            .sum()
    }

    /// Whether `seq` may join `others` in a pass within the bound; a sequence whose prefix
    /// does not fit even alone is computed without it (the same numbers, more work).
    pub(crate) fn admit(&mut self, others: &[usize], seq: usize) -> bool {
        let with: Vec<usize> = others.iter().copied().chain([seq]).collect();
        if self.held + self.would_add(&with) <= self.bound {
            return true;
        }
        if others.is_empty() {
            self.unshared[seq] = true;
            self.release(seq);
            return true;
        }
        false
    }

    /// Compute the prefixes `seqs` need, shorter ones first.
    pub(crate) fn prepare(&mut self, seqs: &[usize]) -> super::ops::Result<()> {
        let mut todo: Vec<usize> = seqs.iter().flat_map(|&s| self.missing(s)).collect();
        todo.sort_unstable();
        todo.dedup();
        while !todo.is_empty() {
            // those whose parent is ready, in passes of up to `pass_tokens` new tokens
            let ready: Vec<usize> = todo
                .iter()
                .copied()
                .filter(|&n| {
                    self.prefixes.nodes[n]
                        .parent
                        .is_none_or(|p| self.caches[p].is_some())
                })
                .collect();
            let budget = super::pass_tokens(self.decoder.device());
            let new = |n: usize| {
                let node = &self.prefixes.nodes[n];
                node.len - node.parent.map_or(0, |p| self.prefixes.nodes[p].len)
            };
            // passes of up to `budget` new tokens
            let mut passes: Vec<&[usize]> = Vec::new();
            let mut first = 0;
            while first < ready.len() {
                let mut end = first + 1;
                let mut tokens = new(ready[first]);
                while end < ready.len() && tokens + new(ready[end]) <= budget {
                    tokens += new(ready[end]);
                    end += 1;
                }
                passes.push(&ready[first..end]);
                first = end;
            }
            let compute = |nodes: &&[usize]| {
                let jobs: Vec<super::decoder::PrefixJob> = nodes
                    .iter()
                    .map(|&n| {
                        let node = &self.prefixes.nodes[n];
                        (
                            &self.seqs[node.seq][..node.len],
                            node.parent.and_then(|p| {
                                Some((self.caches[p].as_ref()?, self.prefixes.nodes[p].len))
                            }),
                        )
                    })
                    .collect();
                self.decoder.prefix_caches(&jobs)
            };
            // on the CPU the passes run side by side, as scoring passes do (`scoring.rs`)
            let made: Vec<super::ops::Result<Vec<SeqCache>>> =
                if passes.len() > 1 && self.decoder.device().is_cpu() {
                    use rayon::prelude::*;
                    passes.par_iter().map(compute).collect()
                } else {
                    passes.iter().map(compute).collect()
                };
            for (nodes, made) in passes.iter().zip(made) {
                for (&n, c) in nodes.iter().zip(made?) {
                    self.held += c.capacity() * self.decoder.kv_bytes_per_token();
                    self.caches[n] = Some(c);
                }
                self.stats.computed += nodes.iter().map(|&n| new(n)).sum::<usize>();
            }
            self.stats.peak_bytes = self.stats.peak_bytes.max(self.held);
            todo.retain(|n| !ready.contains(n));
        }
        Ok(())
    }

    /// Sequence `seq` is done (its own part computed): drop the prefixes no sequence still
    /// needs.
    pub(crate) fn done(&mut self, seq: usize) {
        self.stats.computed += self.seqs[seq].len() - self.skip(seq);
        if !self.unshared[seq] {
            self.release(seq);
        }
    }

    /// The sequences `order` (neighbours sharing prefixes) in batches within the bound: each
    /// batch's prefixes computed, `each(self, batch)` run, its sequences done. Returns the
    /// number of batches.
    pub(crate) fn in_batches(
        &mut self,
        order: &[usize],
        mut each: impl FnMut(&Self, &[usize]) -> super::ops::Result<()>,
    ) -> super::ops::Result<usize> {
        let (mut start, mut batches) = (0, 0);
        while start < order.len() {
            let mut batch: Vec<usize> = Vec::new();
            for &i in &order[start..] {
                if !self.admit(&batch, i) {
                    break;
                }
                batch.push(i);
            }
            self.prepare(&batch)?;
            each(self, &batch)?;
            for &i in &batch {
                self.done(i);
            }
            start += batch.len();
            batches += 1;
        }
        Ok(batches)
    }

    fn release(&mut self, seq: usize) {
        let Some(n) = self.prefixes.of_seq[seq] else {
            return;
        };
        for a in self.prefixes.chain(n) {
            self.users[a] -= 1;
            if self.users[a] == 0 {
                if let Some(c) = self.caches[a].take() {
                    self.held -= c.capacity() * self.decoder.kv_bytes_per_token();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(shared: usize, own: &[u32]) -> Vec<u32> {
        (0..shared as u32).chain(own.iter().copied()).collect()
    }

    #[test]
    fn prefixes_nest_and_end_inside_blocks_only_for_sequences_that_fill_them() {
        let b = QUERY_BLOCK;
        // three docs after one 2.5-block preamble; doc 0 has two choices sharing a further block
        let mut doc0: Vec<u32> = (1000..1000 + b as u32).collect();
        doc0.push(7);
        let a = seq(5 * b / 2, &[doc0.clone(), vec![1]].concat());
        let c = seq(5 * b / 2, &[doc0, vec![2]].concat());
        let d = seq(5 * b / 2, &[9, 9, 9]);
        let e = seq(10, &[1]);
        let f = seq(5 * b / 2, &[8; 40]);
        let seqs: Vec<&[u32]> = vec![&a, &c, &d, &e, &f];
        let p = Prefixes::find(&seqs, &[1, 1, 1, 1, 1]);
        let len = |i: usize| p.of_seq[i].map(|n| p.nodes[n].len);
        // a and c share 3.5 blocks + 1, but end in the block after it: its boundary
        assert_eq!(len(0), Some(3 * b));
        assert_eq!(len(1), Some(3 * b));
        assert_eq!(
            len(2),
            Some(2 * b),
            "d ends inside the preamble's last block"
        );
        assert_eq!(len(3), None, "e shares fewer than MIN_SHARED tokens");
        assert_eq!(
            len(4),
            Some(5 * b / 2),
            "f fills the block: the whole preamble"
        );
        let n0 = p.of_seq[0].unwrap();
        let chain: Vec<usize> = p.chain(n0).iter().map(|&n| p.nodes[n].len).collect();
        assert_eq!(
            chain,
            [2 * b, 5 * b / 2, 3 * b],
            "each prefix extends a shorter one"
        );
    }

    #[test]
    fn the_positions_read_stay_with_the_sequence() {
        let b = QUERY_BLOCK;
        let a = seq(2 * b, &[]);
        let c = seq(2 * b + 1, &[]);
        let seqs: Vec<&[u32]> = vec![&a, &c];
        // a's last position is read: all but it are shared
        let p = Prefixes::find(&seqs, &[1, 1]);
        assert_eq!(p.of_seq[0].map(|n| p.nodes[n].len), Some(2 * b - 1));
        assert_eq!(p.of_seq[1].map(|n| p.nodes[n].len), Some(2 * b - 1));
        let p = Prefixes::find(&seqs, &[1, 2 * b]);
        assert_eq!(p.of_seq[1], None, "all of c's positions are read");
        assert_eq!(p.of_seq[0], None, "nothing left to share with");
    }

    #[test]
    fn a_prefix_inside_a_block_needs_the_block_filled() {
        let b = QUERY_BLOCK;
        assert!(usable(2 * b, 2 * b + 1));
        assert!(!usable(2 * b + 5, 3 * b - 1));
        assert!(usable(2 * b + 5, 3 * b));
    }
}
