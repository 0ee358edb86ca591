"""The correlator's pure core: frames, filters, association, lifecycle, classification, rules.

No I/O and no clock: time arrives with the data. Everything here can be imported, tested and
benchmarked alone.
"""
