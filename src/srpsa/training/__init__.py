"""srpsa.training"""
