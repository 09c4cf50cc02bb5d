//! Checks shared by the fuzz targets.

use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::Network;

/// What every network a loader accepts must satisfy: at least one layer, finite parameters,
/// consecutive shapes that agree (a max-pool layer's output is one value per window), and a forward pass that runs on the zero input and gives one
/// value per output, in f64 and in exact rationals alike.
pub fn check_network(net: &Network) {
    let layers = net.layers();
    assert!(!layers.is_empty(), "a network without layers was accepted");
    let mut width = net.input_dim();
    assert!(width > 0, "a network of input width 0 was accepted");
    for (i, layer) in layers.iter().enumerate() {
        let affine = &layer.affine;
        let (rows, cols) = (affine.out_dim(), affine.in_dim());
        assert_eq!(
            cols,
            width,
            "layer {} takes {cols} inputs, not {width}",
            i + 1
        );
        assert!(rows > 0, "layer {} has no outputs", i + 1);
        for j in 0..rows {
            let row = affine.row(j);
            assert_eq!(row.len(), cols, "layer {}: row {j} width", i + 1);
            assert!(
                row.values().iter().all(|v| v.is_finite()) && affine.bias(j).is_finite(),
                "layer {} has a non-finite parameter",
                i + 1
            );
            // Listed inputs are in range and strictly increasing.
            let positions: Vec<usize> = (0..row.connected()).map(|k| row.position(k)).collect();
            assert!(
                positions.windows(2).all(|p| p[0] < p[1]) && positions.iter().all(|&p| p < cols),
                "layer {}: row {j} lists inputs out of order or range",
                i + 1
            );
        }
        // A max-pool layer passes one value per window on.
        width = layer.out_dim();
    }
    assert_eq!(width, net.output_dim());
    let y = dtdcert::model::forward::output(net, &vec![0.0; net.input_dim()]);
    assert_eq!(y.len(), net.output_dim());
    // The exact twin only for small networks: rationals are slow, and the f64 pass above has
    // already checked the shapes.
    let parameters: usize = layers
        .iter()
        .map(|l| l.affine.in_dim() * l.affine.out_dim() + l.affine.out_dim())
        .sum();
    if parameters <= 4096 {
        let exact = net.to_exact();
        let zero = vec![Rational::zero(); net.input_dim()];
        let ye = dtdcert::model::forward::output(&exact, &zero);
        assert_eq!(ye.len(), net.output_dim());
    }
}
