# Records shared by the call grouping (_order.pyx) and the per-tenant pass
# (_billing.pyx). ratecore.billing mirrors both layouts with numpy
# structured dtypes (CALL_DTYPE, BILL_DTYPE); the kernel checks their sizes.

from libc.stdint cimport int8_t, int32_t, int64_t

# One priced call as the pass reads it: 32 bytes, so a tenant's calls are
# one sequential walk instead of six scattered reads per call.
cdef struct CallRec:
    int64_t start         # UTC microseconds
    int32_t idx           # position in the run's calls (ledger reference, usage_id)
    int32_t grouped       # position when grouped by tenant, before the time sort
    int32_t payer         # license holder, -1 none
    int32_t row           # deck row, -1 none
    int32_t billable      # billable seconds
    int8_t service
    int8_t status         # pricing status

# The billing columns of one call, written over its CallRec once the pass
# has read it (the pass walks the records in order, so this is a sequential
# store to memory already in cache, not a scattered one to fresh memory).
# Columns that are never both non-zero share a field: `amount` is the charge
# of a call charged to credits and the unbilled amount of a cut or blocked
# one; `seconds` likewise (ratecore.billing unpacks them by status).
cdef struct BillRec:
    int64_t amount
    int64_t balance_after
    int32_t pool
    int32_t pool_seconds
    int32_t seconds
    int8_t domestic
    int8_t capability
    int8_t status
    int8_t late           # 1: started before the tenant's point (SPEC §8)
