# Records shared by the call grouping (_order.pyx) and the per-tenant pass
# (_billing.pyx). ratecore.billing mirrors both layouts with numpy
# structured dtypes (CALL_DTYPE, OUT_DTYPE) and checks their sizes.

from libc.stdint cimport int8_t, int32_t, int64_t

# One priced call as the pass reads it: 32 bytes, so a tenant's calls are
# one sequential walk instead of six scattered reads per call.
cdef struct CallRec:
    int64_t start         # UTC microseconds
    int64_t idx           # position in the run's calls (outputs, ledger reference)
    int32_t payer         # license holder, -1 none
    int32_t row           # deck row, -1 none
    int32_t billable      # billable seconds
    int8_t service
    int8_t status         # pricing status

# The billing columns of one call, written at its position: one store of
# 48 bytes instead of ten scattered ones.
cdef struct OutRec:
    int64_t charge
    int64_t unbilled_amount
    int64_t balance_after
    int32_t pool
    int32_t pool_seconds
    int32_t charged_seconds
    int32_t unbilled_seconds
    int8_t domestic
    int8_t capability
    int8_t status
