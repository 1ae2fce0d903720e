// The `metarl` executable: the command line of `MetaRLCLI` with the built-in catalog.
import MetaRLCLI

MetaRLCLI.main()
