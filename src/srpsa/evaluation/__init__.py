"""srpsa.evaluation"""
