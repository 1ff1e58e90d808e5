"""Programs the store runs on its own events: the seed's tactics, set up, run and measured.

Modules: :mod:`.offers` (tiered discounts, free shipping, periods, holdouts),
:mod:`.offer_results` (what an offer did), :mod:`.offer_carts` (carts near a threshold), :mod:`.codes` (unique single-use codes, read back from purchases' coupons),
:mod:`.referrals` (codes per customer, the ledger, payouts), :mod:`.giveaways` (auditable draws,
preview lists), :mod:`.recommend` (viewed and bought together, per person, hit rate),
:mod:`.audience` (who qualifies: :func:`~.audience.qualifying_persons`) and :mod:`.tables` (what
they keep in the store). Every figure is defined in ``docs/programs.md``.
"""
