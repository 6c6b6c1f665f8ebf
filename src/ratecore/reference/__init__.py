"""The plain-Python definition of ratecore's rules, one call at a time.

Written for clarity, never for speed: Decimal money, datetimes, lists and
dicts. The tests compare the Cython kernels with it on random inputs.
"""
