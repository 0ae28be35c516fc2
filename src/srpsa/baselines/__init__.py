"""srpsa.baselines"""
