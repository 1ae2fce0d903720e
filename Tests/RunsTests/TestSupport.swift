import Envs
import Foundation
import MetaRL
import MetaRLCLI
import RL
@testable import Runs

/// `metarl`'s catalog, which the tests look families and algorithms up in.
let catalog = Catalog.metarl

/// A built-in family with `key=value` arguments.
func spec(_ name: String, _ arguments: [String] = []) throws -> EnvSpec { try catalog.families.spec(name, arguments: arguments) }

/// A registered algorithm by name.
func algorithm(_ name: String) throws -> RegisteredAlgorithm { try catalog.algorithms.algorithm(named: name) }

/// A manifest of `name` on `env` with `settings` under the algorithm's settings key.
func manifest<S: AlgorithmSettings>(_ name: String, env: EnvSpec, seed: UInt64, _ settings: S) throws -> RunManifest {
    try RunManifest(algorithm: name, env: env, seed: seed, settingsKey: try algorithm(name).settingsKey, settings: settings)
}

/// `RunConfigFile.parse` for a built-in algorithm.
func parseConfig(_ text: String, source: String, algorithm name: String) throws -> RunManifest {
    try RunConfigFile.parse(text, source: source, algorithm: try algorithm(name), families: catalog.families)
}

extension RunManifest {
    /// The settings as `T` when the section is `key` (nil otherwise).
    func section<T: SettingsTable>(_ key: String, as type: T.Type) -> T? {
        settingsKey == key ? try? settings(as: T.self) : nil
    }
    var rl2: RL2Config? { section("rl2", as: RL2Config.self) }
}
