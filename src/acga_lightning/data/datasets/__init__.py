"""Readers of the released on-disk formats, one module per dataset.

Each reader is a map-style ``Dataset`` of samples of the contract in
:mod:`acga_lightning.data.contract`.
"""
