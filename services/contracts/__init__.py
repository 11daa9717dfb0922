"""The contracts service: products and price books, quotes, approval flows, contracts,
payment collection (回款) and the orders sent to the ERP."""
