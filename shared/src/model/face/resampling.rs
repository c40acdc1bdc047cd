//! Resampling interleaved RGB f32 buffers, as the MTCNN reference does (`INTER_AREA` when
//! shrinking): pure arithmetic, apart from the ONNX and NMS code of the face module.

/// Resamples an interleaved RGB f32 buffer (`w × h × 3`) to `out_w × out_h`, separably:
/// area averaging along an axis that shrinks, bilinear (pixel centres aligned) along one
/// that grows. This is what OpenCV's `INTER_AREA`, which the MTCNN reference uses, does
/// for shrinking.
pub(crate) fn resample(src: &[f32], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    resample_region(src, w, h, (0, 0, w, h), out_w, out_h)
}

/// [`resample`] of the `rw × rh` region at `(x0, y0)` of the buffer, which may extend past
/// its edges: pixels outside are 0. Memory is `rh × out_w`, whatever the region's size.
pub(crate) fn resample_region(
    src: &[f32],
    w: usize,
    h: usize,
    (x0, y0, rw, rh): (i64, i64, usize, usize),
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    let mut dst = vec![0.0f32; out_w * out_h * 3];
    if w == 0 || h == 0 || rw == 0 || rh == 0 || out_w == 0 || out_h == 0 || src.len() < w * h * 3 {
        return dst;
    }
    let inside = |i: usize, origin: i64, n: usize| -> Option<usize> {
        let v = origin + i as i64;
        (v >= 0 && (v as usize) < n).then_some(v as usize)
    };
    // Horizontal pass, region rows that lie in the buffer only (others stay 0): rh × out_w.
    let wx: Vec<Vec<(usize, f32)>> = axis_weights(rw, out_w)
        .into_iter()
        .map(|taps| {
            taps.into_iter()
                .filter_map(|(i, wt)| inside(i, x0, w).map(|x| (x, wt)))
                .collect()
        })
        .collect();
    let mut mid = vec![0.0f32; rh * out_w * 3];
    for j in 0..rh {
        let Some(sy) = inside(j, y0, h) else { continue };
        let row = &src[sy * w * 3..(sy + 1) * w * 3];
        let out = &mut mid[j * out_w * 3..(j + 1) * out_w * 3];
        for (ox, taps) in wx.iter().enumerate() {
            let mut acc = [0.0f32; 3];
            for &(i, wt) in taps {
                acc[0] += row[i * 3] * wt;
                acc[1] += row[i * 3 + 1] * wt;
                acc[2] += row[i * 3 + 2] * wt;
            }
            out[ox * 3..ox * 3 + 3].copy_from_slice(&acc);
        }
    }
    // Vertical pass: out_h × out_w.
    for (oy, taps) in axis_weights(rh, out_h).iter().enumerate() {
        let out = &mut dst[oy * out_w * 3..(oy + 1) * out_w * 3];
        for &(j, wt) in taps {
            let row = &mid[j * out_w * 3..(j + 1) * out_w * 3];
            for (o, r) in out.iter_mut().zip(row) {
                *o += r * wt;
            }
        }
    }
    dst
}

/// Per output index, the source indices and weights along one axis.
fn axis_weights(n: usize, out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n as f64 / out as f64;
    (0..out)
        .map(|o| {
            if scale >= 1.0 {
                let (start, end) = (o as f64 * scale, ((o + 1) as f64 * scale).min(n as f64));
                let mut taps = Vec::with_capacity(scale.ceil() as usize + 1);
                let mut i = start.floor() as usize;
                while (i as f64) < end && i < n {
                    let cover = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                    if cover > 0.0 {
                        taps.push((i, (cover / scale) as f32));
                    }
                    i += 1;
                }
                taps
            } else {
                let x = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (n - 1) as f64);
                let i0 = x.floor() as usize;
                let i1 = (i0 + 1).min(n - 1);
                let f = (x - i0 as f64) as f32;
                if i1 == i0 || f == 0.0 {
                    vec![(i0, 1.0)]
                } else {
                    vec![(i0, 1.0 - f), (i1, f)]
                }
            }
        })
        .collect()
}
