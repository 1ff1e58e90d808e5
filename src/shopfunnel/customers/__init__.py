"""Customers after the first order: retention and cohorts, RFM scores and groups,
lifetime value (BG/NBD + Gamma-Gamma) and win-back lists.
"""
