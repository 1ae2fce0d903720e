import NN
import TensorCore

/// Exact Hessian-vector products, at one fixed parameter point, of a loss that sums a
/// function of an `MLPPolicy`'s outputs over a batch of observations: Pearlmutter's
/// R-operator (1994) written out for the MLP, one tangent pass forward and one backward.
///
/// It computes what `HessianVectorProducts` computes for the same loss, without a tape:
/// the activations and the loss's first derivatives are kept from `init`, and a product
/// runs two matrix products per layer forward and two (four where the loss's gradient is
/// non-zero) backward. For a KL from the fixed point the gradient vanishes and the product
/// is the Gauss-Newton (Fisher) product Jᵀ M J, about two thirds of the tape's time; the
/// policy-gradient Hessian costs about what the tape's does (`metarl bench engine` times
/// both). MAML's outer TRPO step asks for three such products per task for each of
/// conjugate gradient's ten iterations.
///
/// With a_l = h_l W_l + b_l, h_{l+1} = φ(a_l) and the policy's output a_last, for a
/// direction V (one tensor per parameter, in `visitParameters` order):
/// - forward: R a_l = R h_l W_l + h_l V_l + V_b, R h_{l+1} = φ′(a_l) ⊙ R a_l (R h_0 = 0);
/// - the loss's output Hessian gives R δ_last (and the log-std block) from R a_last;
/// - backward: R∇W_l = R h_lᵀ δ_l + h_lᵀ R δ_l, R∇b_l = Σ_rows R δ_l,
///   R δ_{l−1} = (R δ_l W_lᵀ + δ_l V_lᵀ) ⊙ φ′(a_{l−1}) + (δ_l W_lᵀ) ⊙ φ″(a_{l−1}) ⊙ R a_{l−1},
///   where δ_l = ∂loss/∂a_l at the fixed point.
public struct PolicyCurvature {
    /// The loss whose Hessian is multiplied, a weighted sum over the batch's rows.
    public enum Loss {
        /// −Σ_t c_t log π(a_t | s_t): a policy-gradient loss with per-row weights c
        /// (advantage × mask / steps for MAML's inner step). Actions are [N, actionWidth].
        case negativeLogLikelihood(actions: Tensor, weights: Tensor)
        /// Σ_t w_t KL(π₀(·|s_t) ‖ π(·|s_t)) with π₀ the policy at the fixed point; its
        /// Hessian there is the w-weighted Fisher information.
        case klFromFixedPoint(weights: Tensor)
    }

    let policy: MLPPolicy
    /// h_l, the input of layer l (h_0 the observations).
    let inputs: [Tensor]
    /// φ′(a_l) for each hidden layer.
    let slopes: [Tensor]
    /// (δ_{l+1} W_{l+1}ᵀ) ⊙ φ″(a_l) for each hidden layer; nil where φ″ = 0 or δ = 0.
    let bends: [Tensor?]
    /// δ_l = ∂loss/∂a_l; nil when the loss's gradient vanishes (the KL at its fixed point).
    let deltas: [Tensor]?
    /// The output layer's curvature: R δ_last and R∇logStd from R a_last and V_logStd.
    let outputHessian: (_ rOut: Tensor, _ vLogStd: Tensor?) -> (rDelta: Tensor, rLogStd: Tensor?)

    /// Keeps the activations of `policy` on `observations` [N, obs] and the loss's first
    /// derivatives there. Tensors are converted to the policy's dtype.
    public init(policy: MLPPolicy, observations: Tensor, loss: Loss) {
        let layers = policy.network.layers, dtype = layers[0].weight.dtype
        let activation = policy.network.activation
        var inputs = [observations.detached.converted(to: dtype)], slopes: [Tensor] = [], secondSlopes: [Tensor?] = []
        for (l, layer) in layers.enumerated().dropLast() {
            let a = layer(inputs[l]).detached
            switch activation {
            case .tanh:
                let h = a.tanh()
                inputs.append(h)
                let slope = 1 - h * h
                slopes.append(slope)
                secondSlopes.append(h * slope * -2)
            case .relu:
                inputs.append(a.relu())
                slopes.append(a.greater(Tensor.zeros([], dtype: dtype)))
                secondSlopes.append(nil)
            case .identity:
                inputs.append(a)
                slopes.append(Tensor.ones(a.shape, dtype: dtype))
                secondSlopes.append(nil)
            }
        }
        let out = layers[layers.count - 1](inputs[inputs.count - 1]).detached
        let logStd = policy.logStd.detached

        // The output loss: its gradient in a_last (nil if zero) and its Hessian's action.
        let outputGradient: Tensor?
        switch (loss, policy.discrete) {
        case (.negativeLogLikelihood(let actions, let weights), false):
            // ℓ_t = c_t Σ_d [(a − μ)² e^{−2s} / 2 + s]: ∂ℓ/∂μ = −c r with r = (a − μ) e^{−2s};
            // ∂²ℓ/∂μ² = c e^{−2s}, ∂²ℓ/∂μ∂s = 2 c r, ∂²ℓ/∂s² = 2 c r (a − μ).
            let c = weights.detached.converted(to: dtype).reshaped([out.shape[0], 1])
            let precision = (logStd * -2).exp()
            let residual = actions.detached.converted(to: dtype) - out
            let r = residual * precision, cr2 = c * r * 2
            outputGradient = -(c * r)
            let crr2 = cr2 * residual
            outputHessian = { rOut, vLogStd in
                let vs = vLogStd!
                return (c * precision * rOut + cr2 * vs, (cr2 * rOut + crr2 * vs).sum(axes: [0]))
            }
        case (.klFromFixedPoint(let weights), false):
            // At the fixed point: ∂²/∂μ² = w e^{−2s}, ∂²/∂s² = 2w, no cross term, no gradient.
            let w = weights.detached.converted(to: dtype).reshaped([out.shape[0], 1])
            let wPrecision = w * (logStd * -2).exp(), twiceTotal = w.sum() * 2
            outputGradient = nil
            outputHessian = { rOut, vLogStd in (wPrecision * rOut, vLogStd! * twiceTotal) }
        case (.negativeLogLikelihood(let actions, let weights), true):
            // ℓ_t = −c_t log softmax(z)_a: ∂ℓ/∂z = c (p − e_a), ∂²ℓ/∂z² = c (diag p − p pᵀ).
            let c = weights.detached.converted(to: dtype).reshaped([out.shape[0], 1])
            let p = out.softmax(axis: -1)
            let oneHot = Tensor(shape: out.shape, values: Self.oneHot(actions.values.map { Int($0) }, width: out.shape[1]))
                .converted(to: dtype)
            outputGradient = c * (p - oneHot)
            outputHessian = { rOut, _ in (Self.softmaxCurvature(p, weights: c, rOut), nil) }
        case (.klFromFixedPoint(let weights), true):
            // Σ p₀ (log p₀ − log p) at p = p₀: no gradient, Hessian w (diag p − p pᵀ).
            let w = weights.detached.converted(to: dtype).reshaped([out.shape[0], 1])
            let p = out.softmax(axis: -1)
            outputGradient = nil
            outputHessian = { rOut, _ in (Self.softmaxCurvature(p, weights: w, rOut), nil) }
        }

        // δ_l by the ordinary backward pass, and the φ″ terms it brings.
        var deltas: [Tensor]? = nil, bends: [Tensor?] = secondSlopes.map { _ in nil }
        if let outputGradient {
            var delta = outputGradient, all = [delta]
            for l in stride(from: layers.count - 1, to: 0, by: -1) {
                let back = Tensor.matmul(delta, layers[l].weight, transposeB: true)
                bends[l - 1] = secondSlopes[l - 1].map { back * $0 }
                delta = back * slopes[l - 1]
                all.insert(delta, at: 0)
            }
            deltas = all
        }
        self.policy = policy
        self.inputs = inputs
        self.slopes = slopes
        self.bends = bends
        self.deltas = deltas
    }

    /// H·v, with `vector` one tensor per parameter in `visitParameters` order (the policy's
    /// `parameters`), and the product in the same layout.
    public func callAsFunction(_ vector: [Tensor]) -> [Tensor] {
        let layers = policy.network.layers, last = layers.count - 1
        precondition(vector.count == 2 * layers.count + (policy.discrete ? 0 : 1),
                     "PolicyCurvature: \(vector.count) vector parts for \(layers.count) layers")
        let v = vector.map(\.detached), rows = inputs[0].shape[0]
        // Forward tangents: R a_l for every layer, R h_l for l ≥ 1.
        var rA: [Tensor] = [], rH: [Tensor?] = [nil]
        for l in 0...last {
            var ra = v[2 * l + 1].expanded(to: [rows, layers[l].outputSize])
            ra.addMatrixProduct(inputs[l], v[2 * l])
            if let rh = rH[l] { ra.addMatrixProduct(rh, layers[l].weight) }
            rA.append(ra)
            if l < last { rH.append(ra * slopes[l]) }
        }
        let (rOut, rLogStd) = outputHessian(rA[last], policy.discrete ? nil : v[2 * layers.count])
        // Backward: R δ_l and the parameters' R-gradients.
        var product = [Tensor](repeating: Tensor.zeros([0]), count: v.count)
        var rDelta = rOut
        for l in stride(from: last, through: 0, by: -1) {
            var rW = Tensor.matmul(inputs[l], rDelta, transposeA: true)
            if let deltas, let rh = rH[l] { rW.addMatrixProduct(rh, deltas[l], transposeA: true) }
            product[2 * l] = rW
            product[2 * l + 1] = rDelta.sum(axes: [0])
            guard l > 0 else { break }
            var back = Tensor.matmul(rDelta, layers[l].weight, transposeB: true)
            if let deltas { back.addMatrixProduct(deltas[l], v[2 * l], transposeB: true) }
            if let bend = bends[l - 1] {
                back.multiplyAdd(scale: slopes[l - 1], bend, rA[l - 1])
                rDelta = back
            } else {
                rDelta = back * slopes[l - 1]
            }
        }
        if let rLogStd { product[2 * layers.count] = rLogStd }
        return product
    }

    /// c ⊙ (p ⊙ u − p (p · u)) row by row: the softmax cross-entropy's Hessian applied to u.
    static func softmaxCurvature(_ p: Tensor, weights c: Tensor, _ u: Tensor) -> Tensor {
        let pu = p * u
        return c * (pu - p * pu.sum(axes: [1], keepDims: true))
    }

    static func oneHot(_ indices: [Int], width: Int) -> [Float] {
        var out = [Float](repeating: 0, count: indices.count * width)
        for (row, k) in indices.enumerated() { out[row * width + k] = 1 }
        return out
    }
}
