"""srpsa.registration"""
