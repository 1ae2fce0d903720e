// `metarl` with the dark-corridor family added: train, eval, resume, plot, envs, baseline…
import DarkCorridor
import MetaRLCLI

MetaRLCLI.main(families: [DarkCorridor.family])
