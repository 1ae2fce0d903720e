import ArgumentParser
import Envs
import Foundation
import Locomotion
import Runs

/// `metarl mujoco-replay`: steps a MuJoCo family through a recorded action sequence and prints
/// what each step produced, as JSON; the Gymnasium comparison (`scripts/check-mujoco.sh`) drives it.
struct MuJoCoReplay: CatalogCommand {
    static let configuration = CommandConfiguration(
        commandName: "mujoco-replay",
        abstract: "Replay actions on a MuJoCo family from a given state and print observations and reward terms (JSON).",
        shouldDisplay: false)

    @Option(help: "The MuJoCo family (half-cheetah, ant, cheetah-vel, …).") var env: String
    @Option(name: .customLong("env-arg"), help: "An argument of the family, key=value.") var envArguments: [String] = []
    @Argument(help: "JSON file: {initial: {qpos, qvel}, actions: [[…]], states?: [{qpos, qvel}]}.") var file: String

    func run(catalog: Catalog) throws {
        try reportingErrors {
            let spec = try catalog.families.spec(env, arguments: envArguments)
            guard let locomotion = try spec.family.makeEnvironment(spec.arguments) as? LocomotionEnv else {
                throw RunError("\(env) is not a MuJoCo family")
            }
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch { throw RunError("cannot read \(file): \(error.localizedDescription)") }
            let replay: LocomotionReplay
            do { replay = try JSONDecoder().decode(LocomotionReplay.self, from: data) } catch { throw RunError("\(file): not a replay file: \(error)") }
            try printJSON(try replay.run(on: locomotion))
        }
    }
}
