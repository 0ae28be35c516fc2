"""srpsa.psd"""
