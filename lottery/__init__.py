"""The ML core of Nirvana: architectures, init, masks, ticket files, tasks, training,
pruning and the verification protocol. Pure PyTorch: imports no web or database code."""
