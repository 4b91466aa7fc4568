"""The ML core: pure PyTorch, no web, no database, no environment variables.

Grouped by what it is about: ``models`` (architectures and init), ``data`` (tasks),
``pruning`` (masks and pruning), ``training`` (recipes and the loop), ``tickets`` (the
wire format), ``verification`` (the protocol), ``interop`` (OpenLTH, torch.nn.utils.prune).
Each name is imported from the module that defines it; packages re-export nothing."""
