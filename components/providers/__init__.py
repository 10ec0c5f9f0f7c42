"""Dynamic providers (pulumi.dynamic) of this program.

Each provider class lives in an importable module, so the engine pickles it *by reference*:
importing these modules creates no resources and holds no connection, and every method opens
its own client and reads credentials from its inputs at call time.
"""
