"""srpsa.report"""
