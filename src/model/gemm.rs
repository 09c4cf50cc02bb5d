//! f64 matrix products on ndarray views, by faer: the whole-layer products of the affine maps
//! (a dense layer's `h Wᵀ`, a convolution's kernel against its unfolded windows) and of the
//! batched relevances. A product large enough to pay for it runs in parallel over rayon's
//! current pool; a small one on the calling thread.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Products with fewer multiply-adds than this run on the calling thread.
const PARALLEL_WORK: usize = 1 << 18;

/// A view as faer's matrix reference, with the view's own strides (no copy).
fn as_faer<'a>(v: &'a ArrayView2<'_, f64>) -> MatRef<'a, f64> {
    let (rows, cols) = v.dim();
    let strides = v.strides();
    // SAFETY: ndarray's view guarantees that every `ptr + r·s0 + c·s1` with `r < rows` and
    // `c < cols` is a valid, initialised f64 for the view's lifetime, which the returned
    // reference borrows; an empty view is never read.
    unsafe { MatRef::from_raw_parts(v.as_ptr(), rows, cols, strides[0], strides[1]) }
}

/// A mutable view as faer's matrix reference, with the view's own strides (no copy).
fn as_faer_mut<'a>(v: &'a mut ArrayViewMut2<'_, f64>) -> MatMut<'a, f64> {
    let (rows, cols) = v.dim();
    let (s0, s1) = (v.strides()[0], v.strides()[1]);
    // SAFETY: as in `as_faer`, for a view borrowed mutably for the returned reference's
    // lifetime; ndarray's mutable views never alias one element at two positions.
    unsafe { MatMut::from_raw_parts_mut(v.as_mut_ptr(), rows, cols, s0, s1) }
}

/// How a product of `m × k` by `k × n` runs: in parallel over rayon's current pool when it
/// has at least [`PARALLEL_WORK`] multiply-adds and the pool more than one thread.
fn parallelism(m: usize, k: usize, n: usize) -> Par {
    let threads = rayon::current_num_threads();
    let work = m.saturating_mul(k).saturating_mul(n);
    if threads > 1 && work >= PARALLEL_WORK {
        Par::rayon(threads)
    } else {
        Par::Seq
    }
}

/// `c = a b`, or `c += a b` with `accumulate`.
///
/// # Panics
///
/// When the shapes do not chain (`a: m × k`, `b: k × n`, `c: m × n`).
pub fn product_into(
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    mut c: ArrayViewMut2<'_, f64>,
    accumulate: bool,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "a product of {m}×{k} by {k2}×{n} into {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    let par = parallelism(m, k, n);
    matmul(
        as_faer_mut(&mut c),
        accum,
        as_faer(&a),
        as_faer(&b),
        1.0,
        par,
    );
}

/// `a b`.
///
/// # Panics
///
/// When the shapes do not chain (`a: m × k`, `b: k × n`).
pub fn product(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    product_into(a, b, c.view_mut(), false);
    c
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array2};

    use super::*;

    /// `a b` summed entry by entry.
    fn naive(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|k| a[[i, k]] * b[[k, j]]).sum()
        })
    }

    fn filled(rows: usize, cols: usize, seed: f64) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i * 31 + j * 17) as f64 * seed).sin()
        })
    }

    #[test]
    fn products_of_strided_and_transposed_views_match_the_sums() {
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 2), (17, 9, 33), (70, 130, 90), (4, 0, 3)] {
            let a = filled(m, k + 3, 0.37);
            let b = filled(n, k, 1.13);
            let a = a.slice(s![.., 1..k + 1]);
            let bt = b.t();
            let want = naive(a, bt);
            let got = product(a, bt);
            let gap = (&got - &want).iter().fold(0.0f64, |g, v| g.max(v.abs()));
            assert!(gap <= 1e-12 * (k as f64 + 1.0), "{m}×{k}×{n}: {gap}");
            let mut c = filled(m, n, 0.5);
            let before = c.clone();
            product_into(a, bt, c.view_mut(), true);
            let gap = (&c - &(&before + &want))
                .iter()
                .fold(0.0f64, |g, v| g.max(v.abs()));
            assert!(
                gap <= 1e-12 * (k as f64 + 1.0),
                "{m}×{k}×{n} accumulated: {gap}"
            );
        }
    }
}
