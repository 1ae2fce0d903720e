import TensorCore

/// A recurrent cell: one step maps an input [B, input] and a state [B, stateSize] to an
/// output [B, outputSize] and the next state. The state is one tensor for every cell (an
/// LSTM's is [h, c] side by side), so rollouts can store and reset it uniformly.
public protocol RecurrentCell: ParameterCollection {
    var inputSize: Int { get }
    var outputSize: Int { get }
    var stateSize: Int { get }
    /// The part of one step that depends only on the input: x·Wx + b, for a whole
    /// sequence at once (one large matrix product instead of T small ones).
    func inputProjection(_ x: Tensor) -> Tensor
    /// One step from a precomputed input projection.
    func step(projected: Tensor, state: Tensor) -> (output: Tensor, state: Tensor)
    /// Runs the cell over a sequence (see the extension's documentation); a cell with a
    /// fused sequence primitive provides its own.
    func unroll(_ inputs: Tensor, initialState: Tensor, resetMask: Tensor?) -> (outputs: Tensor, finalState: Tensor)
}

extension RecurrentCell {
    /// One step from a raw input.
    public func callAsFunction(_ x: Tensor, state: Tensor) -> (output: Tensor, state: Tensor) {
        step(projected: inputProjection(x), state: state)
    }

    /// The all-zero initial state for a batch.
    public func zeroState(batchSize: Int, dtype: DType = .float32) -> Tensor {
        Tensor.zeros([batchSize, stateSize], dtype: dtype)
    }

    /// Runs the cell over a sequence [T, B, input] from `initialState` [B, stateSize].
    ///
    /// `resetMask` [T, B] holds 1 where the state must be zeroed *before* step t (the
    /// start of a new task for RL²) and 0 where it is carried; nil carries it throughout.
    /// Returns the outputs [T, B, outputSize] and the state after the last step.
    public func unroll(_ inputs: Tensor, initialState: Tensor) -> (outputs: Tensor, finalState: Tensor) {
        unroll(inputs, initialState: initialState, resetMask: nil)
    }

    public func unroll(_ inputs: Tensor, initialState: Tensor, resetMask: Tensor?) -> (outputs: Tensor, finalState: Tensor) {
        steppedUnroll(inputs, initialState: initialState, resetMask: resetMask)
    }

    /// The unroll written as T calls of `step`.
    public func steppedUnroll(_ inputs: Tensor, initialState: Tensor, resetMask: Tensor? = nil) -> (outputs: Tensor, finalState: Tensor) {
        precondition(inputs.rank == 3 && inputs.shape[2] == inputSize, "unroll: inputs \(inputs.shape), cell input size \(inputSize)")
        let steps = inputs.shape[0], batch = inputs.shape[1]
        precondition(initialState.shape == [batch, stateSize], "unroll: initial state \(initialState.shape) for batch \(batch), state size \(stateSize)")
        if let resetMask { precondition(resetMask.shape == [steps, batch], "unroll: reset mask \(resetMask.shape) for inputs \(inputs.shape)") }
        let projected = inputProjection(inputs)
        var state = initialState
        var outputs: [Tensor] = []
        outputs.reserveCapacity(steps)
        let keep = resetMask.map { 1 - $0.detached.reshaped([steps, batch, 1]) }
        // Steps where some copy resets; the others carry the state without a multiply.
        let resetsAt = resetMask.map { mask in
            let v = mask.values
            return (0..<steps).map { t in v[(t * batch)..<((t + 1) * batch)].contains { $0 != 0 } }
        }
        for t in 0..<steps {
            if let keep, resetsAt![t] {
                state = state * keep.slice(axis: 0, t..<(t + 1)).reshaped([batch, 1])
            }
            let p = projected.slice(axis: 0, t..<(t + 1)).reshaped([batch, projected.shape[2]])
            let (y, next) = step(projected: p, state: state)
            outputs.append(y)
            state = next
        }
        return (Tensor.stack(outputs, axis: 0), state)
    }
}

/// A gated recurrent unit (Cho et al. 2014) in PyTorch's form:
/// r = σ(x Wxr + bxr + h Whr + bhr), z = σ(x Wxz + bxz + h Whz + bhz),
/// n = tanh(x Wxn + bxn + r ⊙ (h Whn + bhn)), h′ = (1 − z) ⊙ n + z ⊙ h.
public struct GRUCell: RecurrentCell, Codable, Sendable {
    /// [input, 3·hidden], gate blocks in the order r, z, n.
    public var inputWeight: Tensor
    /// [hidden, 3·hidden].
    public var hiddenWeight: Tensor
    public var inputBias: Tensor
    public var hiddenBias: Tensor

    /// PyTorch's initialisation: everything uniform in ±1/√hidden.
    public init(inputSize: Int, hiddenSize: Int, using rng: inout Xoshiro256) {
        let b = 1 / Double(hiddenSize).squareRoot()
        inputWeight = Tensor.randomUniform([inputSize, 3 * hiddenSize], low: -b, high: b, using: &rng)
        hiddenWeight = Tensor.randomUniform([hiddenSize, 3 * hiddenSize], low: -b, high: b, using: &rng)
        inputBias = Tensor.randomUniform([3 * hiddenSize], low: -b, high: b, using: &rng)
        hiddenBias = Tensor.randomUniform([3 * hiddenSize], low: -b, high: b, using: &rng)
    }

    public var inputSize: Int { inputWeight.shape[0] }
    public var hiddenSize: Int { hiddenWeight.shape[0] }
    public var outputSize: Int { hiddenSize }
    public var stateSize: Int { hiddenSize }

    public func inputProjection(_ x: Tensor) -> Tensor { x.matmul(inputWeight) + inputBias }

    /// The whole sequence as one fused primitive (`Tensor.gruSequence`), same values as
    /// stepping, a fraction of the time.
    public func unroll(_ inputs: Tensor, initialState: Tensor, resetMask: Tensor?) -> (outputs: Tensor, finalState: Tensor) {
        precondition(inputs.rank == 3 && inputs.shape[2] == inputSize, "unroll: inputs \(inputs.shape), cell input size \(inputSize)")
        let steps = inputs.shape[0], batch = inputs.shape[1]
        let keep = resetMask.map { 1 - $0.detached }
        let states = Tensor.gruSequence(projected: inputProjection(inputs), initialState: initialState,
                                        hiddenWeight: hiddenWeight, hiddenBias: hiddenBias, keep: keep)
        return (states, states.slice(axis: 0, (steps - 1)..<steps).reshaped([batch, hiddenSize]))
    }

    public func step(projected gx: Tensor, state h: Tensor) -> (output: Tensor, state: Tensor) {
        let n = hiddenSize
        let gh = Tensor.matmul(h, hiddenWeight) + hiddenBias
        let rz = (gx.slice(axis: 1, 0..<(2 * n)) + gh.slice(axis: 1, 0..<(2 * n))).sigmoid()
        let r = rz.slice(axis: 1, 0..<n), z = rz.slice(axis: 1, n..<(2 * n))
        let candidate = (gx.slice(axis: 1, (2 * n)..<(3 * n)) + r * gh.slice(axis: 1, (2 * n)..<(3 * n))).tanh()
        let next = candidate + z * (h - candidate)
        return (next, next)
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        body("inputWeight", &inputWeight)
        body("hiddenWeight", &hiddenWeight)
        body("inputBias", &inputBias)
        body("hiddenBias", &hiddenBias)
    }
}

/// A GRU with layer normalisation on each gate pre-activation, a ReLU candidate and a
/// closed update gate at initialisation, as in the public PyTorch RL² implementation
/// (lucaslingle/pytorch_rl2, after Ba et al. 2016): the ReLU lets the state hold
/// unbounded sums (counts, reward totals) and the normalisation keeps the recurrence
/// stable over long trials.
///
///     a = LN(x Wx_rz) + LN(h Wh_rz),   r = σ(a_r),   z = σ(a_z − forgetBias),
///     n = relu(LN(x Wx_n) + r ⊙ LN(h Wh_n)),   h′ = h + z ⊙ (n − h).
///
/// The four normalisations each have their own gain and bias; the matrix products have
/// none (the normalisation's bias takes its place).
public struct LayerNormGRUCell: RecurrentCell, Codable, Sendable {
    /// [input, 3·hidden], gate blocks in the order r, z, n.
    public var inputWeight: Tensor
    /// [hidden, 3·hidden].
    public var hiddenWeight: Tensor
    public var inputGateNorm: LayerNorm
    public var inputCandidateNorm: LayerNorm
    public var hiddenGateNorm: LayerNorm
    public var hiddenCandidateNorm: LayerNorm
    /// Subtracted from the update gate's pre-activation, so a fresh cell mostly keeps its state.
    public var forgetBias: Double

    /// Xavier-normal weights, unit gains and zero biases.
    public init(inputSize: Int, hiddenSize: Int, forgetBias: Double = 1, using rng: inout Xoshiro256) {
        func xavier(_ rows: Int, _ columns: Int) -> Tensor {
            Tensor.randomNormal([rows, columns], mean: 0, standardDeviation: (2 / Double(rows + columns)).squareRoot(), using: &rng)
        }
        let n = hiddenSize
        inputWeight = Tensor.concat([xavier(inputSize, 2 * n), xavier(inputSize, n)], axis: 1)
        hiddenWeight = Tensor.concat([xavier(n, 2 * n), xavier(n, n)], axis: 1)
        inputGateNorm = LayerNorm(size: 2 * n)
        inputCandidateNorm = LayerNorm(size: n)
        hiddenGateNorm = LayerNorm(size: 2 * n)
        hiddenCandidateNorm = LayerNorm(size: n)
        self.forgetBias = forgetBias
    }

    public var inputSize: Int { inputWeight.shape[0] }
    public var hiddenSize: Int { hiddenWeight.shape[0] }
    public var outputSize: Int { hiddenSize }
    public var stateSize: Int { hiddenSize }

    /// The normalised input halves [..., 3·hidden]: LN(x Wx_rz) beside LN(x Wx_n), as one
    /// fused normalisation with two segments.
    public func inputProjection(_ x: Tensor) -> Tensor {
        precondition(inputGateNorm.epsilon == inputCandidateNorm.epsilon, "LayerNormGRUCell: the input normalisations share one epsilon")
        let n = hiddenSize
        return x.matmul(inputWeight).layerNormalized(
            gain: Tensor.concat([inputGateNorm.gain, inputCandidateNorm.gain], axis: 0),
            bias: Tensor.concat([inputGateNorm.bias, inputCandidateNorm.bias], axis: 0),
            segments: [2 * n, n], epsilon: inputGateNorm.epsilon)
    }

    /// The states [T, B, H] over projected inputs [T, B, 3H] by the fused primitive
    /// (`Tensor.layerNormGRUSequence`).
    func sequence(projected: Tensor, initialState: Tensor, keep: Tensor?) -> Tensor {
        precondition(hiddenGateNorm.epsilon == hiddenCandidateNorm.epsilon, "LayerNormGRUCell: the hidden normalisations share one epsilon")
        return Tensor.layerNormGRUSequence(
            projected: projected, initialState: initialState, hiddenWeight: hiddenWeight,
            gateGain: hiddenGateNorm.gain, gateBias: hiddenGateNorm.bias,
            candidateGain: hiddenCandidateNorm.gain, candidateBias: hiddenCandidateNorm.bias,
            forgetBias: forgetBias, epsilon: hiddenGateNorm.epsilon, keep: keep)
    }

    public func unroll(_ inputs: Tensor, initialState: Tensor, resetMask: Tensor?) -> (outputs: Tensor, finalState: Tensor) {
        precondition(inputs.rank == 3 && inputs.shape[2] == inputSize, "unroll: inputs \(inputs.shape), cell input size \(inputSize)")
        let steps = inputs.shape[0], batch = inputs.shape[1]
        let states = sequence(projected: inputProjection(inputs), initialState: initialState, keep: resetMask.map { 1 - $0.detached })
        return (states, states.slice(axis: 0, (steps - 1)..<steps).reshaped([batch, hiddenSize]))
    }

    /// One step: the fused sequence primitive over a sequence of length one.
    public func step(projected gx: Tensor, state h: Tensor) -> (output: Tensor, state: Tensor) {
        let batch = h.shape[0]
        let next = sequence(projected: gx.reshaped([1, batch, 3 * hiddenSize]), initialState: h, keep: nil).reshaped([batch, hiddenSize])
        return (next, next)
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        body("inputWeight", &inputWeight)
        body("hiddenWeight", &hiddenWeight)
        withoutActuallyEscaping(body) { body in
            inputGateNorm.visitParameters { name, t in body("inputGateNorm.\(name())", &t) }
            inputCandidateNorm.visitParameters { name, t in body("inputCandidateNorm.\(name())", &t) }
            hiddenGateNorm.visitParameters { name, t in body("hiddenGateNorm.\(name())", &t) }
            hiddenCandidateNorm.visitParameters { name, t in body("hiddenCandidateNorm.\(name())", &t) }
        }
    }
}

/// A long short-term memory cell (Hochreiter & Schmidhuber 1997) in PyTorch's form,
/// gates i, f, g, o. Its state is [h, c] side by side, [B, 2·hidden]; its output is h.
public struct LSTMCell: RecurrentCell, Codable, Sendable {
    /// [input, 4·hidden], gate blocks in the order i, f, g, o.
    public var inputWeight: Tensor
    /// [hidden, 4·hidden].
    public var hiddenWeight: Tensor
    /// [4·hidden] (PyTorch's two biases folded into one).
    public var bias: Tensor

    public init(inputSize: Int, hiddenSize: Int, using rng: inout Xoshiro256) {
        let b = 1 / Double(hiddenSize).squareRoot()
        inputWeight = Tensor.randomUniform([inputSize, 4 * hiddenSize], low: -b, high: b, using: &rng)
        hiddenWeight = Tensor.randomUniform([hiddenSize, 4 * hiddenSize], low: -b, high: b, using: &rng)
        bias = Tensor.randomUniform([4 * hiddenSize], low: -b, high: b, using: &rng)
    }

    public var inputSize: Int { inputWeight.shape[0] }
    public var hiddenSize: Int { hiddenWeight.shape[0] }
    public var outputSize: Int { hiddenSize }
    public var stateSize: Int { 2 * hiddenSize }

    public func inputProjection(_ x: Tensor) -> Tensor { x.matmul(inputWeight) + bias }

    public func step(projected gx: Tensor, state: Tensor) -> (output: Tensor, state: Tensor) {
        let n = hiddenSize
        let h = state.slice(axis: 1, 0..<n), c = state.slice(axis: 1, n..<(2 * n))
        let gates = gx + Tensor.matmul(h, hiddenWeight)
        let ifo = Tensor.concat([gates.slice(axis: 1, 0..<(2 * n)), gates.slice(axis: 1, (3 * n)..<(4 * n))], axis: 1).sigmoid()
        let i = ifo.slice(axis: 1, 0..<n), f = ifo.slice(axis: 1, n..<(2 * n)), o = ifo.slice(axis: 1, (2 * n)..<(3 * n))
        let g = gates.slice(axis: 1, (2 * n)..<(3 * n)).tanh()
        let cNext = f * c + i * g
        let hNext = o * cNext.tanh()
        return (hNext, Tensor.concat([hNext, cNext], axis: 1))
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        body("inputWeight", &inputWeight)
        body("hiddenWeight", &hiddenWeight)
        body("bias", &bias)
    }
}

/// A GRU, a layer-normalised GRU or an LSTM cell chosen at run time (RL²'s `--cell`).
public enum RecurrentCellChoice: RecurrentCell, Codable, Sendable {
    case gru(GRUCell)
    case layerNormGRU(LayerNormGRUCell)
    case lstm(LSTMCell)

    /// The kinds by name, for configs and flags.
    public enum Kind: String, NamedChoice {
        case gru
        case layerNormGRU = "ln-gru"
        case lstm
    }

    public init(_ kind: Kind, inputSize: Int, hiddenSize: Int, using rng: inout Xoshiro256) {
        switch kind {
        case .gru: self = .gru(GRUCell(inputSize: inputSize, hiddenSize: hiddenSize, using: &rng))
        case .layerNormGRU: self = .layerNormGRU(LayerNormGRUCell(inputSize: inputSize, hiddenSize: hiddenSize, using: &rng))
        case .lstm: self = .lstm(LSTMCell(inputSize: inputSize, hiddenSize: hiddenSize, using: &rng))
        }
    }

    /// The chosen cell, for the protocol's members.
    var cell: any RecurrentCell {
        switch self {
        case .gru(let c): c
        case .layerNormGRU(let c): c
        case .lstm(let c): c
        }
    }

    public var inputSize: Int { cell.inputSize }
    public var outputSize: Int { cell.outputSize }
    public var stateSize: Int { cell.stateSize }

    /// The kind of the chosen cell.
    public var kind: Kind {
        switch self {
        case .gru: .gru
        case .layerNormGRU: .layerNormGRU
        case .lstm: .lstm
        }
    }

    /// The chosen cell's input-side weights, [inputs × gate units].
    public var inputWeight: Tensor {
        get {
            switch self {
            case .gru(let c): c.inputWeight
            case .layerNormGRU(let c): c.inputWeight
            case .lstm(let c): c.inputWeight
            }
        }
        set {
            switch self {
            case .gru(var c): c.inputWeight = newValue; self = .gru(c)
            case .layerNormGRU(var c): c.inputWeight = newValue; self = .layerNormGRU(c)
            case .lstm(var c): c.inputWeight = newValue; self = .lstm(c)
            }
        }
    }

    /// This cell reading `count` more inputs, inserted before input `index`, with zero
    /// weights (on any input whose new entries are zero it computes exactly what it did), or
    /// with `source`'s weights for those inputs (a cell of the same kind and size reading
    /// them, e.g. a fresh one).
    public func insertingInputs(_ count: Int, at index: Int, from source: RecurrentCellChoice? = nil) -> RecurrentCellChoice {
        var widened = self
        widened.inputWeight = inputWeight.insertingRows(count, at: index, from: source?.inputWeight)
        return widened
    }
    /// This cell with `fresh`'s hidden size (`fresh` of the same kind, reading the same inputs,
    /// with at least as many units): its own units keep their weights and compute exactly what
    /// they did, since the added units feed them nothing (zero weights from the added units
    /// into the old units' gates); the added units take `fresh`'s weights. An agent whose heads
    /// read the added units with zero weights therefore acts exactly as before, and training
    /// grows into them. Nil for a layer-normalised GRU (its norms over all units would change
    /// the old units' values) or a `fresh` that does not fit.
    public func widened(into fresh: RecurrentCellChoice) -> RecurrentCellChoice? {
        guard fresh.inputSize == inputSize, fresh.outputSize >= outputSize else { return nil }
        switch (self, fresh) {
        case (.gru(let old), .gru(var wide)):
            wide.inputWeight = old.inputWeight.embeddingGateBlocks(3, into: wide.inputWeight)
            wide.hiddenWeight = old.hiddenWeight.embeddingGateBlocks(3, into: wide.hiddenWeight)
            wide.inputBias = old.inputBias.embeddingGateBlocks(3, into: wide.inputBias)
            wide.hiddenBias = old.hiddenBias.embeddingGateBlocks(3, into: wide.hiddenBias)
            return .gru(wide)
        case (.lstm(let old), .lstm(var wide)):
            wide.inputWeight = old.inputWeight.embeddingGateBlocks(4, into: wide.inputWeight)
            wide.hiddenWeight = old.hiddenWeight.embeddingGateBlocks(4, into: wide.hiddenWeight)
            wide.bias = old.bias.embeddingGateBlocks(4, into: wide.bias)
            return .lstm(wide)
        default:
            return nil
        }
    }

    /// This cell's first `hiddenSize` units alone (the weights among them and from the
    /// inputs): a source of input weights shaped for a narrower cell of the same kind. Nil for
    /// a layer-normalised GRU or a size above this cell's.
    public func narrowed(to hiddenSize: Int) -> RecurrentCellChoice? {
        guard hiddenSize >= 1, hiddenSize <= outputSize else { return nil }
        switch self {
        case .gru(var c):
            c.inputWeight = c.inputWeight.croppingGateBlocks(3, width: hiddenSize)
            c.hiddenWeight = c.hiddenWeight.croppingGateBlocks(3, width: hiddenSize, rows: hiddenSize)
            c.inputBias = c.inputBias.croppingGateBlocks(3, width: hiddenSize)
            c.hiddenBias = c.hiddenBias.croppingGateBlocks(3, width: hiddenSize)
            return .gru(c)
        case .lstm(var c):
            c.inputWeight = c.inputWeight.croppingGateBlocks(4, width: hiddenSize)
            c.hiddenWeight = c.hiddenWeight.croppingGateBlocks(4, width: hiddenSize, rows: hiddenSize)
            c.bias = c.bias.croppingGateBlocks(4, width: hiddenSize)
            return .lstm(c)
        case .layerNormGRU:
            return nil
        }
    }

    public func inputProjection(_ x: Tensor) -> Tensor { cell.inputProjection(x) }
    public func step(projected: Tensor, state: Tensor) -> (output: Tensor, state: Tensor) { cell.step(projected: projected, state: state) }
    public func unroll(_ inputs: Tensor, initialState: Tensor, resetMask: Tensor?) -> (outputs: Tensor, finalState: Tensor) {
        cell.unroll(inputs, initialState: initialState, resetMask: resetMask)
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        switch self {
        case .gru(var c):
            c.visitParameters(body)
            self = .gru(c)
        case .layerNormGRU(var c):
            c.visitParameters(body)
            self = .layerNormGRU(c)
        case .lstm(var c):
            c.visitParameters(body)
            self = .lstm(c)
        }
    }
}

extension Tensor {
    /// Gate-blocked weights, [rows × blocks·n] (or a bias, [blocks·n]), placed in `target`,
    /// [rows' × blocks·N] with rows' ≥ rows and N ≥ n: column b·N + j of the first `rows` rows
    /// takes column b·n + j (j < n) and the rows beyond get zero in those columns; `target`'s
    /// other columns stay as they are (the added units' own weights).
    public func embeddingGateBlocks(_ blocks: Int, into target: Tensor) -> Tensor {
        let matrix = rank == 1 ? reshaped([1, shape[0]]) : self
        let wide = target.rank == 1 ? target.reshaped([1, target.shape[0]]) : target
        let rows = matrix.shape[0], n = matrix.shape[1] / blocks, wideRows = wide.shape[0], wideN = wide.shape[1] / blocks
        let blocksFit: Bool = n * blocks == matrix.shape[1] && wideN * blocks == wide.shape[1]
        let sizesFit: Bool = rank == target.rank && wideRows >= rows && wideN >= n
        precondition(blocksFit && sizesFit, "embeddingGateBlocks: \(shape) into \(target.shape)")
        let old = matrix.doubleValues
        var values = wide.doubleValues
        for r in 0..<wideRows {
            for b in 0..<blocks {
                for j in 0..<n { values[r * blocks * wideN + b * wideN + j] = r < rows ? old[r * blocks * n + b * n + j] : 0 }
            }
        }
        return Tensor(shape: target.shape, doubleValues: values, dtype: target.dtype)
    }

    /// Of gate-blocked weights [rows × blocks·N] (or a bias [blocks·N]), the first `width`
    /// columns of each block and the first `rows` rows (all when nil).
    public func croppingGateBlocks(_ blocks: Int, width: Int, rows: Int? = nil) -> Tensor {
        let matrix = rank == 1 ? reshaped([1, shape[0]]) : self
        let allRows = matrix.shape[0], n = matrix.shape[1] / blocks, kept = rows ?? allRows
        precondition(matrix.rank == 2 && n * blocks == matrix.shape[1] && width <= n && kept <= allRows,
                     "croppingGateBlocks: \(shape) to width \(width)")
        let values = matrix.doubleValues
        var cropped: [Double] = []
        cropped.reserveCapacity(kept * blocks * width)
        for r in 0..<kept {
            for b in 0..<blocks {
                let first: Int = (r * blocks + b) * n
                cropped += values[first..<(first + width)]
            }
        }
        return Tensor(shape: rank == 1 ? [blocks * width] : [kept, blocks * width], doubleValues: cropped, dtype: dtype)
    }
}
