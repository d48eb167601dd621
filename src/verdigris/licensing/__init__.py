"""Licensing and billing: tariffs, licenses, quotas, invoices, payments, plan changes, loyalty, transfers."""
