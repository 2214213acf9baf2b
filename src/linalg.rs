//! Small dense linear algebra in `f64`, for the ridge solves of the linear
//! item-item model and the fold-in of a request's user vector.

/// Solves `a · x = b` for symmetric positive-definite `a` (`m × m`,
/// row-major, overwritten by its Cholesky factor); `b` becomes `x`. False
/// when `a` is not positive definite (never for a Gram matrix plus λI).
pub(crate) fn cholesky_solve(a: &mut [f64], b: &mut [f64], m: usize) -> bool {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..m {
        let s: f64 = (0..i).map(|k| a[i * m + k] * b[k]).sum();
        b[i] = (b[i] - s) / a[i * m + i];
    }
    for i in (0..m).rev() {
        let s: f64 = (i + 1..m).map(|k| a[k * m + i] * b[k]).sum();
        b[i] = (b[i] - s) / a[i * m + i];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_positive_definite_system_and_refuses_an_indefinite_one() {
        let n = 4;
        let g = [4.0, 1.0, 0.5, 0.0, 1.0, 3.0, 0.2, 0.1, 0.5, 0.2, 2.0, 0.3, 0.0, 0.1, 0.3, 1.5];
        let mut a = g.to_vec();
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        assert!(cholesky_solve(&mut a, &mut x, n));
        for i in 0..n {
            let dot: f64 = (0..n).map(|m| g[i * n + m] * x[m]).sum();
            assert!((dot - (i + 1) as f64).abs() < 1e-12);
        }
        assert!(
            !cholesky_solve(&mut [0.0, 1.0, 1.0, 0.0], &mut [1.0, 1.0], 2),
            "not positive definite"
        );
    }
}
