"""Projections rebuilt from the log: RawExchangeRecord, snapshot packs, checkpoints, point in time."""

__all__: list[str] = []
