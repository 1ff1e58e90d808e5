"""The seed's tactics as programs a store runs: offers (tiered discounts, free shipping,
time-limited, with unique single-use codes), referral rewards with a ledger, auditable
giveaway draws and preview lists, and item and person recommendations.

Modules: :mod:`.offers`, :mod:`.codes`, :mod:`.referrals`, :mod:`.giveaways`,
:mod:`.recommend`; :mod:`.tables` creates their tables in the store and
:mod:`.audience` picks who qualifies. Definitions: docs/programs.md.
"""
