from dashboard.upload_page import render

render()
