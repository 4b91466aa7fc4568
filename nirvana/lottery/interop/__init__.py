"""Tickets from and to other tools: OpenLTH run folders, torch.nn.utils.prune."""
