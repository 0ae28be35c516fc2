"""srpsa.inference"""
