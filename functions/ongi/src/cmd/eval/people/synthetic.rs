//! Synthetic albums with known identities, for the evaluation (`ongi eval people`) and
//! tests. Embeddings imitate SFace's cosine statistics; nothing here reads a file.
//!
//! Generator (dimension 128, every vector unit length):
//! - a shared "face" direction `g`; identity centres `c = normalise(√β·g + √(1−β)·u)` with
//!   `u` random and β = [`COMMON_SHARE`], so centres have cos ≈ β to each other; a
//!   [`LOOKALIKE_SHARE`] of identities are look-alikes of an earlier one (siblings):
//!   `c = normalise(0.55·c_other + 0.835·c_new)`, centre cos ≈ 0.6;
//! - a face is `a·c + √(1−a²)·n` with `n` random and orthogonal to `c`, so cos(face, c) = a
//!   and two faces of one person have cos ≈ a₁·a₂:
//!   typical faces a ∈ U(0.72, 0.90) (pairs 0.52–0.81), hard faces (profile, blur; share
//!   [`HARD_SHARE`]) a ∈ U(0.55, 0.72), very hard outliers (share [`OUTLIER_SHARE`])
//!   a ∈ U(0.25, 0.45), half of them also pulled towards a random other person by
//!   b ∈ U(0.3, 0.45) (a face that looks like someone else);
//! - faces of different people then have cos ≈ a₁·a₂·β ± 0.09 (0–0.3), look-alikes ≈ 0.35;
//! - faces per identity: a [`SINGLETON_SHARE`] have one face (strangers), the rest 2–12;
//! - photos: about 0.7 photos per face; each face goes into a random photo that does not
//!   already show that person, so group photos mix people; faces are ordered by photo;
//! - quality follows difficulty: typical U(0.5, 1), hard U(0.2, 0.6), outliers U(0, 0.3).

use ongi_shared::analysis::people::FaceInput;

pub const DIM: usize = 128;
pub const COMMON_SHARE: f64 = 0.25;
pub const LOOKALIKE_SHARE: f64 = 0.1;
pub const HARD_SHARE: f64 = 0.12;
pub const OUTLIER_SHARE: f64 = 0.05;
pub const SINGLETON_SHARE: f64 = 0.25;
pub const MAX_FACES: usize = 12;

/// SplitMix64: small, fast, and the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6f6e_6769_7065_6f70)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    pub fn unit_vector(&mut self) -> Vec<f64> {
        let v: Vec<f64> = (0..DIM).map(|_| self.normal()).collect();
        normalised(v)
    }
}

fn normalised(v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    v.into_iter().map(|x| x / n).collect()
}

fn mix(parts: &[(f64, &[f64])]) -> Vec<f64> {
    let mut out = vec![0.0; DIM];
    for (w, v) in parts {
        out.iter_mut().zip(v.iter()).for_each(|(o, x)| *o += w * x);
    }
    out
}

/// A random unit vector orthogonal to the unit vector `c`.
fn orthogonal(rng: &mut Rng, c: &[f64]) -> Vec<f64> {
    let n = rng.unit_vector();
    let d: f64 = n.iter().zip(c).map(|(x, y)| x * y).sum();
    normalised(mix(&[(1.0, &n), (-d, c)]))
}

#[derive(Debug, Clone)]
pub struct SyntheticAlbum {
    pub faces: Vec<FaceInput>,
    /// The true identity of each face.
    pub identity: Vec<usize>,
}

impl SyntheticAlbum {
    /// An album of `identities` people from `seed` (the same seed, the same album).
    pub fn generate(identities: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let g = rng.unit_vector();
        let mut centres: Vec<Vec<f64>> = Vec::with_capacity(identities);
        for k in 0..identities {
            let u = rng.unit_vector();
            let fresh = normalised(mix(&[(COMMON_SHARE.sqrt(), &g), ((1.0 - COMMON_SHARE).sqrt(), &u)]));
            let centre = if k > 0 && rng.unit() < LOOKALIKE_SHARE {
                let other = rng.below(k);
                normalised(mix(&[(0.55, &centres[other]), (0.835, &fresh)]))
            } else {
                fresh
            };
            centres.push(centre);
        }
        // (identity, embedding, quality)
        let mut made: Vec<(usize, Vec<f64>, f64)> = Vec::new();
        for (k, c) in centres.iter().enumerate() {
            let count = if rng.unit() < SINGLETON_SHARE {
                1
            } else {
                2 + rng.below(MAX_FACES - 1)
            };
            for _ in 0..count {
                let kind = rng.unit();
                let n = orthogonal(&mut rng, c);
                let (e, quality) = if kind < OUTLIER_SHARE {
                    let a = rng.uniform(0.25, 0.45);
                    let mut e = mix(&[(a, c), ((1.0 - a * a).sqrt(), &n)]);
                    if identities > 1 && rng.unit() < 0.5 {
                        let other = (k + 1 + rng.below(identities - 1)) % identities;
                        let b = rng.uniform(0.3, 0.45);
                        e = mix(&[(1.0, &e), (b, &centres[other])]);
                    }
                    (normalised(e), rng.uniform(0.0, 0.3))
                } else if kind < OUTLIER_SHARE + HARD_SHARE {
                    let a = rng.uniform(0.55, 0.72);
                    (mix(&[(a, c), ((1.0 - a * a).sqrt(), &n)]), rng.uniform(0.2, 0.6))
                } else {
                    let a = rng.uniform(0.72, 0.90);
                    (mix(&[(a, c), ((1.0 - a * a).sqrt(), &n)]), rng.uniform(0.5, 1.0))
                };
                made.push((k, e, quality));
            }
        }
        // Photos: a random one that does not show this person yet (else a new one).
        let mut photos: Vec<Vec<usize>> = vec![Vec::new(); (made.len() * 7).div_ceil(10).max(1)];
        let mut photo_of = Vec::with_capacity(made.len());
        for (k, _, _) in &made {
            let start = rng.below(photos.len());
            let free = (0..photos.len())
                .map(|o| (start + o) % photos.len())
                .find(|&p| !photos[p].contains(k));
            let p = free.unwrap_or_else(|| {
                photos.push(Vec::new());
                photos.len() - 1
            });
            photos[p].push(*k);
            photo_of.push(p);
        }
        let mut order: Vec<usize> = (0..made.len()).collect();
        order.sort_by_key(|&i| (photo_of[i], i));
        let mut faces = Vec::with_capacity(made.len());
        let mut identity = Vec::with_capacity(made.len());
        for i in order {
            let (k, e, q) = &made[i];
            faces.push(FaceInput {
                photo: photo_of[i],
                embedding: e.iter().map(|&x| x as f32).collect(),
                quality: *q as f32,
            });
            identity.push(*k);
        }
        // Photo numbers in face order, so that "first photo" reads naturally.
        let mut renumber: Vec<Option<usize>> = vec![None; photos.len()];
        let mut next = 0;
        for f in &mut faces {
            let p = *renumber[f.photo].get_or_insert_with(|| {
                next += 1;
                next - 1
            });
            f.photo = p;
        }
        Self { faces, identity }
    }

    pub fn embeddings(&self) -> Vec<Vec<f32>> {
        self.faces.iter().map(|f| f.embedding.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use ongi_shared::analysis::people::dot;

    use super::*;

    #[test]
    fn synthetic_albums_are_reproducible_and_have_the_documented_statistics() {
        let a = SyntheticAlbum::generate(60, 3);
        let b = SyntheticAlbum::generate(60, 3);
        assert_eq!(a.faces, b.faces);
        let mut within = Vec::new();
        let mut between = Vec::new();
        for i in 0..a.faces.len() {
            for j in i + 1..a.faces.len() {
                let s = dot(&a.faces[i].embedding, &a.faces[j].embedding);
                if a.identity[i] == a.identity[j] {
                    within.push(s);
                } else {
                    between.push(s);
                }
                if a.faces[i].photo == a.faces[j].photo {
                    assert_ne!(a.identity[i], a.identity[j]);
                }
            }
        }
        let median = |v: &mut Vec<f32>| {
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        let (w, bt) = (median(&mut within), median(&mut between));
        assert!((0.5..0.8).contains(&w), "within-person median cosine {w}");
        assert!((0.0..0.3).contains(&bt), "between-person median cosine {bt}");
    }
}
